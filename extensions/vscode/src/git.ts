// Every git command the extension runs goes through here: fixed locale, no
// pager, no prompts, bounded output, failures logged.

import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

export interface GitLog {
    appendLine(line: string): void;
}

const MAX_BUFFER = 64 * 1024 * 1024;

/** Runs git in cwd and returns its stdout; rejects with stderr in the message. */
export function git(log: GitLog | undefined, cwd: string, args: readonly string[]): Promise<string> {
    return new Promise((resolve, reject) => {
        execFile(
            "git",
            ["-c", "core.quotepath=off", ...args],
            {
                cwd,
                maxBuffer: MAX_BUFFER,
                encoding: "utf8",
                env: { ...process.env, LC_ALL: "C", GIT_PAGER: "cat", GIT_TERMINAL_PROMPT: "0", GIT_OPTIONAL_LOCKS: "0" },
            },
            (err, stdout, stderr) => {
                if (err !== null) {
                    const msg = `git ${args.join(" ")} (in ${cwd}) failed: ${stderr.trim() || err.message}`;
                    log?.appendLine(msg);
                    reject(new Error(msg));
                    return;
                }
                resolve(stdout);
            },
        );
    });
}

/**
 * The main checkout of the repository that contains dir (also when dir is in
 * a linked worktree), as the daemon records it in Agent.repo; undefined when
 * dir is in no repository.
 */
export async function mainCheckout(log: GitLog | undefined, dir: string): Promise<string | undefined> {
    try {
        const common = (await git(undefined, dir, ["rev-parse", "--path-format=absolute", "--git-common-dir"])).trim();
        if (common === "") return undefined;
        // <main>/.git for ordinary repositories (what the daemon records, worktree/repo.go RepoRoot).
        if (path.basename(common) === ".git") return path.dirname(common);
        // A separate git dir: from the main worktree its top level is the answer.
        const [gitDir = "", top = ""] = (await git(undefined, dir, ["rev-parse", "--path-format=absolute", "--git-dir", "--show-toplevel"])).trim().split("\n");
        return path.normalize(gitDir) === path.normalize(common) && top !== "" ? top : undefined;
    } catch (e) {
        log?.appendLine(`${dir} is not in a git repository: ${String(e)}`);
        return undefined;
    }
}

/** How deep below a workspace folder repositories are looked for, and how many folders at most are read. */
const SCAN_DEPTH = 2;
const SCAN_LIMIT = 2000;

/**
 * The window's repositories: the main checkout of each workspace folder
 * that is in a repository (the folder may be a subfolder or a linked
 * worktree), then those of the repositories inside the folders (up to
 * SCAN_DEPTH levels down; hidden folders and node_modules are skipped).
 * Paths are as the daemon records them in Agent.repo.
 */
export async function findRepositories(log: GitLog | undefined, folders: readonly string[]): Promise<string[]> {
    const roots: string[] = [];
    const add = (r: string | undefined): void => {
        if (r !== undefined && !roots.includes(r)) roots.push(r);
    };
    for (const f of folders) add(await mainCheckout(log, f));
    let budget = SCAN_LIMIT;
    const scan = async (dir: string, depth: number): Promise<void> => {
        if (depth > SCAN_DEPTH || budget <= 0) return;
        budget--;
        let entries: fs.Dirent[];
        try {
            entries = await fs.promises.readdir(dir, { withFileTypes: true });
        } catch {
            return;
        }
        for (const e of entries) {
            if (!e.isDirectory() || e.name.startsWith(".") || e.name === "node_modules") continue;
            const sub = path.join(dir, e.name);
            // A repository's .git is a folder; a linked worktree's is a file.
            if (fs.existsSync(path.join(sub, ".git"))) add(await mainCheckout(undefined, sub));
            else await scan(sub, depth + 1);
        }
    };
    for (const f of folders) {
        // A folder that is itself a repository's top level: its subfolders belong to it.
        if (fs.existsSync(path.join(f, ".git"))) continue;
        await scan(f, 1);
    }
    return roots;
}
