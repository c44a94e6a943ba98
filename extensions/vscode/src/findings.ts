// "Show Findings": a review's findings as problems (the Problems panel, the
// editor's squiggles, F8), on the files of the agent's worktree while it
// exists, else of the main checkout. One agent's findings replace its
// earlier ones; they are dropped once the agent landed or left.

import * as fs from "node:fs";
import * as vscode from "vscode";

import { findingSeverity, findingTarget, reviewerOf } from "./landing";
import type { Agent, Finding, Review } from "./lsp_ext";
import { abilities, isLanded } from "./model";

export class ReviewFindings implements vscode.Disposable {
    readonly collection = vscode.languages.createDiagnosticCollection("bgagents-review");
    /** The diagnostics published per agent, by file. */
    private readonly byAgent = new Map<string, Map<string, vscode.Diagnostic[]>>();

    /** Publishes the review's findings of agent; returns the files they are on. */
    show(agent: Agent, review: Review): vscode.Uri[] {
        const worktreeExists = abilities(agent).open && fs.existsSync(agent.worktree);
        const files = new Map<string, vscode.Diagnostic[]>();
        for (const f of review.findings ?? []) {
            const target = findingTarget(f, agent, worktreeExists);
            if (target === undefined) continue;
            const d = new vscode.Diagnostic(new vscode.Range(target.line, 0, target.line, Number.MAX_SAFE_INTEGER), f.message, severity(f));
            d.source = `review by ${reviewerOf(review)}`;
            let list = files.get(target.path);
            if (list === undefined) files.set(target.path, (list = []));
            list.push(d);
        }
        this.byAgent.set(agent.id, files);
        this.rebuild();
        return [...files.keys()].map((p) => vscode.Uri.file(p));
    }

    /** A new snapshot: findings of an agent that landed are dropped. */
    onAgent(agent: Agent): void {
        if (isLanded(agent.state) && this.byAgent.delete(agent.id)) this.rebuild();
    }

    /** Drops the findings of agents that are no longer known. */
    retain(known: (id: string) => boolean): void {
        let changed = false;
        for (const id of [...this.byAgent.keys()]) {
            if (!known(id)) changed = this.byAgent.delete(id) || changed;
        }
        if (changed) this.rebuild();
    }

    /** Several agents may have findings on the same path (the main checkout): the collection is their union. */
    private rebuild(): void {
        const all = new Map<string, vscode.Diagnostic[]>();
        for (const files of this.byAgent.values()) {
            for (const [p, ds] of files) all.set(p, [...(all.get(p) ?? []), ...ds]);
        }
        this.collection.clear();
        for (const [p, ds] of all) this.collection.set(vscode.Uri.file(p), ds);
    }

    dispose(): void {
        this.collection.dispose();
    }
}

function severity(f: Finding): vscode.DiagnosticSeverity {
    switch (findingSeverity(f)) {
        case "error":
            return vscode.DiagnosticSeverity.Error;
        case "warning":
            return vscode.DiagnosticSeverity.Warning;
        default:
            return vscode.DiagnosticSeverity.Information;
    }
}
