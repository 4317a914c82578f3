// What changed between a workload's revisions: the images per container, newest first. Pure.
import type { Revision } from "./queries";

export interface ImageChange {
  container: string;
  from: string | null;
  to: string | null;
}

export interface RevisionChanges {
  revision: Revision;
  changes: ImageChange[];
}

/** Each revision (newest first) with its image changes against the one recorded before it. */
export function revisionChanges(revisions: Revision[]): RevisionChanges[] {
  return revisions.map((revision, i) => {
    const before = revisions[i + 1]?.images ?? {};
    const after = revision.images;
    const containers = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    const changes = containers
      .filter((c) => before[c] !== after[c])
      .map((c) => ({ container: c, from: before[c] ?? null, to: after[c] ?? null }));
    return { revision, changes };
  });
}
