// How many calls the pipeline is working on, across fronts. The worker batcher and the audit writer ask
// it whether anything could join a batch: a lone call's batch then goes once the current microtasks are
// done instead of waiting for the next event-loop turn, which only gathers the calls of others.
export class CallsInProgress {
  count = 0;

  /** Only one call (the caller's own) is in progress: no other operation or row can join its batch. */
  readonly alone = (): boolean => this.count <= 1;
}
