// A FIFO of Buffers that hands out exact-length slices without concatenating everything it holds.
export class ByteQueue {
  private readonly parts: Buffer[] = [];
  length = 0;

  push(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.parts.push(bytes);
    this.length += bytes.length;
  }

  /** The first `n` bytes (n <= length) without consuming them. */
  peek(n: number): Buffer {
    const first = this.parts[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (const part of this.parts) {
      if (filled === n) break;
      filled += part.copy(out, filled, 0, Math.min(part.length, n - filled));
    }
    return out;
  }

  /** Removes and returns the first `n` bytes (n <= length). */
  take(n: number): Buffer {
    const out = this.peek(n);
    let left = n;
    while (left > 0) {
      const part = this.parts[0]!;
      if (part.length <= left) {
        this.parts.shift();
        left -= part.length;
      } else {
        this.parts[0] = part.subarray(left);
        left = 0;
      }
    }
    this.length -= n;
    return out;
  }
}
