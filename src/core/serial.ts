// Runs async tasks one at a time, in the order given: a failed one does not stop the next.
export class Serial {
  private last: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.last.then(task);
    this.last = next.catch(() => {});
    return next;
  }
}
