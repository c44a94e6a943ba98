// Pure planning of an agent's diff: which two versions of each changed file
// are compared, and how a git revision of a file is named as a URI.

import type { DiffResult, FileChange } from "./lsp_ext";

/** URI scheme of file contents at a git revision, served by diff.ts. */
export const GIT_SCHEME = "bgagents-git";

/** One side of a file diff. */
export type Side =
    /**
     * `git cat-file -p REF:PATH` in repo; ref "" is an empty file (added or
     * deleted). `at` is the absolute path shown for it (where the file is in
     * the worktree), so both sides of a diff name the same file.
     */
    | { kind: "git"; repo: string; ref: string; path: string; at: string }
    /** The file on disk (the agent's worktree), editable. */
    | { kind: "file"; path: string };

export interface FileDiff {
    file: FileChange;
    left: Side;
    right: Side;
    /** Editor title, e.g. "calc.go (de2c4da ↔ bgagents/fix-add)". */
    title: string;
}

/**
 * Plans the diff of every changed file: left is the base commit; right is
 * the file on disk in the agent's worktree when the daemon compared the
 * worktree's content (`uncommitted`: a running agent's edits, new untracked
 * files), or while the worktree exists (its files are then the head's, and
 * edits there show up live); else the agent's recorded head. A deleted
 * file's right side is empty.
 */
export function planDiff(d: DiffResult, worktreeExists: boolean): FileDiff[] {
    return (d.files ?? []).map((f) => planFile(d, f, worktreeExists));
}

export function planFile(d: DiffResult, f: FileChange, worktreeExists: boolean): FileDiff {
    const leftPath = f.oldPath !== undefined && f.oldPath !== "" ? f.oldPath : f.path;
    const at = (p: string): string => joinPath(d.worktree, p);
    const left: Side = { kind: "git", repo: d.repo, ref: f.status === "A" ? "" : d.baseCommit, path: leftPath, at: at(leftPath) };
    let right: Side;
    if (f.status === "D") right = { kind: "git", repo: d.repo, ref: "", path: f.path, at: at(f.path) };
    // `head` does not have the uncommitted content: only the file on disk has.
    else if (d.uncommitted === true || worktreeExists) right = { kind: "file", path: at(f.path) };
    else right = { kind: "git", repo: d.repo, ref: d.head, path: f.path, at: at(f.path) };
    return { file: f, left, right, title: `${basename(f.path)} (${d.baseCommit.slice(0, 7)} ↔ ${agentSide(d)})` };
}

/** How the agent's side is named in titles: its branch, or its worktree when that has uncommitted changes. */
export function agentSide(d: DiffResult): string {
    return d.uncommitted === true ? `${d.branch}, uncommitted` : d.branch;
}

/** The query of a GIT_SCHEME URI: which file (path, relative to repo) at which revision. */
export interface GitQuery {
    repo: string;
    ref: string;
    path: string;
}

export function encodeGitQuery(q: GitQuery): string {
    return JSON.stringify({ repo: q.repo, ref: q.ref, path: q.path });
}

/** Parses a GIT_SCHEME query; undefined when it is not one of ours. */
export function decodeGitQuery(query: string): GitQuery | undefined {
    try {
        const v: unknown = JSON.parse(query);
        if (typeof v !== "object" || v === null) return undefined;
        const { repo, ref, path } = v as Record<string, unknown>;
        if (typeof repo !== "string" || typeof ref !== "string" || typeof path !== "string") return undefined;
        return { repo, ref, path };
    } catch {
        return undefined;
    }
}

/** A git revision must not look like an option. */
export function isSafeRef(ref: string): boolean {
    return ref !== "" && !ref.startsWith("-") && !/\s/.test(ref);
}

function joinPath(dir: string, rel: string): string {
    return dir.endsWith("/") ? dir + rel : `${dir}/${rel}`;
}

function basename(p: string): string {
    const i = p.lastIndexOf("/");
    return i < 0 ? p : p.slice(i + 1);
}
