import { channel } from 'node:diagnostics_channel';

/**
 * Progress of a search while it runs, finer than its rounds: what a progress display needs between two
 * `onRound` reports. runSearch publishes these on a process-wide diagnostics channel rather than through
 * an option, so that a display sees them without every caller of runSearch (runSearchToFolder, for
 * the CLI and the coordinator service; benchmarks) having to forward a hook; publishing costs nothing while nobody
 * listens. Several searches can run in one process (the coordinator service): `search` tells them
 * apart. Nothing here is an input to any decision of the search.
 */
export type SearchProgressEvent =
  /** The search loop started: its workers are up (the models are open). `nfe`: spent by replayed rounds. */
  | { readonly kind: 'search-start'; readonly search: number; readonly nfe: number; readonly generation: number; readonly generations: number }
  /** A round was handed to the workers; `generation` is the number completed before it. */
  | { readonly kind: 'round-start'; readonly search: number; readonly round: number; readonly label: string; readonly nfe: number; readonly generation: number; readonly generations: number }
  /** One worker's share of the round in flight came back: `nfe` is the run's total so far, counted. */
  | { readonly kind: 'work'; readonly search: number; readonly round: number; readonly nfe: number }
  /** A round finished and the search took its answers in: the best reward so far. */
  | { readonly kind: 'round-end'; readonly search: number; readonly round: number; readonly nfe: number; readonly generation: number; readonly generations: number; readonly best: number | null }
  /** The search loop is over (the final samples fetched); what follows is writing the run folder. */
  | { readonly kind: 'search-end'; readonly search: number; readonly nfe: number };

const progressChannel = channel('evosearch:search-progress');
let searches = 0;

/** A new id for one runSearch call. */
export function nextSearchId(): number {
  searches += 1;
  return searches;
}

/** Whether anyone listens (build no event otherwise). */
export function progressWanted(): boolean {
  return progressChannel.hasSubscribers;
}

export function publishProgress(event: SearchProgressEvent): void {
  if (progressChannel.hasSubscribers) progressChannel.publish(event);
}

/** Calls `listener` with every progress event of every search in this process until the returned function is called. */
export function subscribeProgress(listener: (event: SearchProgressEvent) => void): () => void {
  const onMessage = (message: unknown) => {
    try {
      listener(message as SearchProgressEvent);
    } catch {
      // A display's bug must not fail the run (diagnostics_channel would rethrow it as uncaught).
    }
  };
  progressChannel.subscribe(onMessage);
  return () => {
    progressChannel.unsubscribe(onMessage);
  };
}
