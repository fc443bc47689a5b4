// A one-line progress bar on stderr, drawn only when stderr is a terminal (never in pipes or logs).
const WIDTH = 30;

export class Progress {
  private readonly enabled: boolean;
  private last = 0;
  private files = 0;
  private bytes = 0;

  constructor(
    private readonly totalFiles: number,
    private readonly totalBytes: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.enabled = stream.isTTY === true;
  }

  addBytes(n: number): void {
    this.bytes += n;
    this.draw(false);
  }

  fileDone(): void {
    this.files++;
    this.draw(true);
  }

  finish(): void {
    if (this.enabled) this.stream.write("\n");
  }

  private draw(force: boolean): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < 100) return;
    this.last = now;
    const fraction = this.totalBytes > 0 ? Math.min(1, this.bytes / this.totalBytes) : this.files / Math.max(1, this.totalFiles);
    const filled = Math.round(fraction * WIDTH);
    const bar = "#".repeat(filled) + "-".repeat(WIDTH - filled);
    this.stream.write(`\r[${bar}] ${Math.floor(fraction * 100)}% ${this.files}/${this.totalFiles} files ${mib(this.bytes)}/${mib(this.totalBytes)} MiB`);
  }
}

function mib(n: number): string {
  return (n / 1024 / 1024).toFixed(1);
}
