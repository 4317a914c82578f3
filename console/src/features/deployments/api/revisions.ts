// What changed between a workload's revisions, newest first: the rollout's strategy and, per container of the
// recorded pod template, its image, environment, resource requests and limits, command and args. Pure.
import type { Revision } from "./queries";

export type ChangeField = "strategy" | "container" | "image" | "env" | "requests" | "limits" | "command" | "args";

export interface RevisionChange {
  field: ChangeField;
  container: string | null; // null: the revision as a whole (its strategy)
  key: string | null; // the variable of `env`, the resource of `requests` / `limits`
  from: string | null;
  to: string | null;
}

export interface RevisionChanges {
  revision: Revision;
  changes: RevisionChange[];
}

type Flat = Map<string, RevisionChange>; // "container/field/key" -> the value, as a change from nothing

interface EnvVar {
  name?: unknown;
  value?: unknown;
  valueFrom?: unknown;
}

interface Container {
  name?: unknown;
  image?: unknown;
  env?: EnvVar[];
  resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
  command?: unknown[];
  args?: unknown[];
}

function text(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function containersOf(revision: Revision): Container[] {
  const spec = (revision.template as { spec?: { containers?: Container[] } } | undefined)?.spec;
  const containers = Array.isArray(spec?.containers) ? spec.containers : [];
  if (containers.length > 0) return containers;
  // a revision recorded before the deployer kept its template: its images only
  return Object.entries(revision.images).map(([name, image]) => ({ name, image }));
}

/** Every compared value of a revision, keyed so that two revisions line up field by field. */
function flatten(revision: Revision): Flat {
  const out: Flat = new Map();
  const put = (field: ChangeField, container: string | null, key: string | null, value: string) =>
    out.set(`${container ?? ""}/${field}/${key ?? ""}`, { field, container, key, from: null, to: value });
  if (revision.strategy) put("strategy", null, null, revision.strategy);
  for (const c of containersOf(revision)) {
    const name = text(c.name ?? "?");
    put("container", name, null, name);
    if (c.image !== undefined) put("image", name, null, text(c.image));
    for (const v of c.env ?? []) {
      put("env", name, text(v.name ?? "?"), v.valueFrom !== undefined ? text(v.valueFrom) : text(v.value ?? ""));
    }
    for (const kind of ["requests", "limits"] as const) {
      for (const [resource, amount] of Object.entries(c.resources?.[kind] ?? {})) put(kind, name, resource, text(amount));
    }
    if (c.command?.length) put("command", name, null, c.command.map(text).join(" "));
    if (c.args?.length) put("args", name, null, c.args.map(text).join(" "));
  }
  return out;
}

const ORDER: ChangeField[] = ["strategy", "container", "image", "env", "requests", "limits", "command", "args"];

/** The changes from `before` (null: the first revision recorded) to `after`, in a stable reading order. */
export function changesBetween(before: Revision | null, after: Revision): RevisionChange[] {
  const old = before ? flatten(before) : new Map<string, RevisionChange>();
  const now = flatten(after);
  const keys = [...new Set([...old.keys(), ...now.keys()])];
  const changes = keys
    .map((k): RevisionChange => {
      const was = old.get(k);
      const is = now.get(k);
      const base = (is ?? was)!;
      return { ...base, from: was?.to ?? null, to: is?.to ?? null };
    })
    .filter((c) => c.from !== c.to)
    // the first revision lists what it ran; after it, a container added or removed is one change, not one per field
    .filter((c) => (before === null ? c.field !== "container" : c.field === "container" || !containerCame(c, old, now)));
  const rank = (c: RevisionChange) => ORDER.indexOf(c.field);
  return changes.sort(
    (a, b) =>
      (a.container ?? "").localeCompare(b.container ?? "") ||
      rank(a) - rank(b) ||
      (a.key ?? "").localeCompare(b.key ?? ""),
  );
}

function containerCame(change: RevisionChange, old: Flat, now: Flat): boolean {
  if (change.container === null) return false;
  const key = `${change.container}/container/`;
  return old.has(key) !== now.has(key);
}

/** Each revision (newest first) with its changes against the one recorded before it. */
export function revisionChanges(revisions: Revision[]): RevisionChanges[] {
  return revisions.map((revision, i) => ({ revision, changes: changesBetween(revisions[i + 1] ?? null, revision) }));
}
