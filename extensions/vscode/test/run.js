// Runs the extension in a real VS Code: code-server (VS Code's server build)
// headless, driven through Debian's Chromium with playwright-core.
//
//   1. UI tests: the .vsix installed into a fresh profile; a user's actions
//      (palette, sidebar, notifications, dialogs, diff editor, lightbulb)
//      asserted on the DOM, with screenshots.
//   2. Extension-host tests (test/exthost/index.ts): the extension loaded
//      from its source folder through the URL payload
//      (extensionDevelopmentPath + extensionTestsPath).
//
// vscode_test.go prepares the repositories and the daemon's home and runs
// this with Node 24; run it through `go test ./extensions/vscode/`.
// Every wait has a deadline and waits on DOM state or an event, never on a
// fixed sleep (short pauses only between attempts). What clicks on the
// sidebar's rows is tried again until a deadline (onRow): rows move, are
// redrawn, or are out of view. Prints "ok"/"FAIL" lines (a failure in full,
// with a screenshot) and "N passed, N failed".
//
// Environment:
//   BGAGENTS_VSCODE_DIR   .cache/vscode (code-server, playwright-core)
//   BGAGENTS_TEST_VSIX    the .vsix to install
//   BGAGENTS_TEST_EXT     the extension's source folder (built: dist/, out/)
//   BGAGENTS_TEST_BIN     the bgagents binary
//   BGAGENTS_TEST_UI_REPO, BGAGENTS_TEST_REPO   repositories for the UI and extension-host tests
//   BGAGENTS_TEST_GATES   folder of files the test agent and git hook wait on
//   BGAGENTS_TEST_WORK    scratch folder for profiles, logs and screenshots
//   BGAGENTS_HOME         the daemon's state (shared by the extension and the CLI)
//   BGAGENTS_TEST_ONLY    "ui" or "exthost" to run one part
"use strict";

const { spawn, execFile, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const path = require("node:path");

const env = (name) => {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set`);
    return v;
};
const CACHE = env("BGAGENTS_VSCODE_DIR");
const VSIX = env("BGAGENTS_TEST_VSIX");
const EXT = env("BGAGENTS_TEST_EXT");
const BIN = env("BGAGENTS_TEST_BIN");
const UI_REPO = env("BGAGENTS_TEST_UI_REPO");
const EXT_REPO = env("BGAGENTS_TEST_REPO");
const GATES = env("BGAGENTS_TEST_GATES");
const WORK = env("BGAGENTS_TEST_WORK");
const ONLY = process.env.BGAGENTS_TEST_ONLY || "";
const SHOTS = path.join(WORK, "screenshots");
const CODE_SERVER = path.join(CACHE, "code-server/node_modules/.bin/code-server");
const { chromium } = require(path.join(CACHE, "playwright/node_modules/playwright-core"));

let passed = 0;
let failed = 0;
/** The page a failing check screenshots. */
let currentPage;
const t0 = Date.now();
const log = (...a) => console.log(...a);

/** Runs one check; a failure is reported and later checks still run (they may fail as a consequence). */
async function check(name, fn) {
    const t = Date.now();
    try {
        await fn();
        passed++;
        log(`ok   ${name} (${Date.now() - t} ms)`);
        return true;
    } catch (e) {
        failed++;
        // All of it: Playwright's message has the call log (what it waited for, and what was in the way).
        const text = (e && e.stack) || String(e);
        const message = e && e.message && !text.includes(e.message) ? `${e.message}\n${text}` : text;
        log(`FAIL ${name} (after ${Date.now() - t} ms): ${message.split("\n").join("\n     ")}`);
        if (currentPage) {
            const file = path.join(WORK, `failure-${failed}.png`);
            await currentPage.screenshot({ path: file }).then(() => log(`     screenshot: ${file}`), (err) => log(`     no screenshot: ${err.message}`));
        }
        return false;
    }
}

/** Polls a cheap local condition (a file on disk) with a deadline. */
async function until(what, ms, pred) {
    const end = Date.now() + ms;
    for (;;) {
        if (await pred()) return;
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 100));
    }
}

// ---- processes -------------------------------------------------------------

const groups = new Set(); // process group ids we started (code-server instances)

function killGroup(pgid, signal) {
    try {
        process.kill(-pgid, signal);
    } catch {
        /* gone */
    }
}

async function stopGroup(child) {
    if (!groups.has(child.pid)) return;
    killGroup(child.pid, "SIGTERM");
    const exited = new Promise((r) => child.once("exit", r));
    const timeout = new Promise((r) => setTimeout(r, 5000));
    await Promise.race([child.exitCode !== null ? Promise.resolve() : exited, timeout]);
    killGroup(child.pid, "SIGKILL"); // the extension host and other children
    groups.delete(child.pid);
}

for (const sig of ["SIGINT", "SIGTERM"]) {
    process.on(sig, () => {
        for (const g of groups) killGroup(g, "SIGKILL");
        process.exit(2);
    });
}

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.on("error", reject);
        s.listen(0, "127.0.0.1", () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

/** A fresh VS Code profile: user settings, extensions folder, HOME, TMPDIR. */
function profile(name) {
    const dir = path.join(WORK, name);
    for (const d of ["ud/User", "ext", "home", "tmp"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
    const settings = {
        "workbench.startupEditor": "none",
        "chat.disableAIFeatures": true,
        "workbench.secondarySideBar.defaultVisibility": "hidden",
        "workbench.tips.enabled": false,
        "extensions.ignoreRecommendations": true,
        "telemetry.telemetryLevel": "off",
        "security.workspace.trust.enabled": false,
        "update.mode": "none",
        "workbench.reduceMotion": "on",
        "git.enabled": false,
        "git.openRepositoryInParentFolders": "never",
        "editor.minimap.enabled": false,
        "window.commandCenter": false,
        "workbench.layoutControl.enabled": false,
        "diffEditor.renderSideBySide": true,
        "diffEditor.hideUnchangedRegions.enabled": false,
        "diffEditor.useInlineViewWhenSpaceIsLimited": false,
        // A click on a row selects it (inline() does, so that its buttons stay shown) without expanding it.
        "workbench.tree.expandMode": "doubleClick",
        // Tooltips (hovers) cover the rows below the mouse and stay while the mouse is on them: the tests
        // never look at them (calm() in test/run.js takes the mouse away besides).
        "workbench.hover.delay": 30000,
        "workbench.hover.reducedDelay": 30000,
    };
    fs.writeFileSync(path.join(dir, "ud/User/settings.json"), JSON.stringify(settings, null, 2));
    // bgagents.path is machine-overridable: a remote window (code-server is
    // one) reads it from the remote machine's settings, not the user's.
    fs.mkdirSync(path.join(dir, "ud/Machine"), { recursive: true });
    fs.writeFileSync(path.join(dir, "ud/Machine/settings.json"), JSON.stringify({ "bgagents.path": BIN }, null, 2));
    fs.writeFileSync(path.join(dir, "config.yaml"), "auth: none\n");
    const childEnv = {
        ...process.env,
        HOME: path.join(dir, "home"),
        XDG_CONFIG_HOME: path.join(dir, "home/.config"),
        XDG_DATA_HOME: path.join(dir, "home/.local/share"),
        XDG_CACHE_HOME: path.join(dir, "home/.cache"),
        TMPDIR: path.join(dir, "tmp"),
        XDG_RUNTIME_DIR: path.join(dir, "tmp"),
    };
    const args = ["--config", path.join(dir, "config.yaml"), "--user-data-dir", path.join(dir, "ud"), "--extensions-dir", path.join(dir, "ext")];
    return { dir, env: childEnv, args };
}

function run(cmd, args, opts) {
    return new Promise((resolve, reject) => {
        execFile(cmd, args, { ...opts, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
            if (err) reject(new Error(`${path.basename(cmd)} ${args.join(" ")}: ${err.message}\n${stdout}${stderr}`));
            else resolve(stdout);
        });
    });
}

async function startCodeServer(p, name, folder, extra) {
    const port = await freePort();
    const logFile = path.join(p.dir, `${name}.log`);
    const out = fs.openSync(logFile, "a");
    const child = spawn(
        CODE_SERVER,
        [
            ...p.args,
            "--bind-addr", `127.0.0.1:${port}`,
            "--auth", "none",
            "--disable-telemetry",
            "--disable-update-check",
            "--disable-workspace-trust",
            "--disable-getting-started-override",
            "--reconnection-grace-time", "5",
            ...extra,
            folder,
        ],
        { env: p.env, stdio: ["ignore", out, out], detached: true },
    );
    groups.add(child.pid);
    fs.closeSync(out);
    const base = `http://127.0.0.1:${port}`;
    await until(`${name} to answer on ${base}/healthz`, 30_000, async () => {
        if (child.exitCode !== null) throw new Error(`code-server exited with ${child.exitCode}; see ${logFile}:\n${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
        try {
            return (await fetch(`${base}/healthz`)).ok;
        } catch {
            return false;
        }
    });
    return { child, base, logFile };
}

async function browser(name) {
    const dir = path.join(WORK, `chromium-${name}`);
    const ctx = await chromium.launchPersistentContext(dir, {
        executablePath: "/usr/bin/chromium",
        headless: true,
        args: [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
        ],
        viewport: { width: 1440, height: 900 },
    });
    return ctx;
}

// ---- UI tests ----------------------------------------------------------------

async function uiTests() {
    const p = profile("ui");
    await check("the .vsix installs into code-server", async () => {
        const out = await run(CODE_SERVER, [...p.args, "--install-extension", VSIX, "--force"], { env: p.env });
        if (!/was successfully installed/.test(out)) throw new Error(out);
    });
    const cs = await startCodeServer(p, "code-server-ui", UI_REPO, []);
    const ctx = await browser("ui");
    const page = ctx.pages()[0] || (await ctx.newPage());
    currentPage = page;

    const toast = (text) => page.locator(".notifications-toasts .notification-toast", { hasText: text });
    const view = page.locator(".pane", { has: page.locator(".pane-header", { hasText: "Agents" }) });
    /** An agent's row (its aria-label starts with its name and state). */
    const row = (name) => view.locator(`.monaco-list-row[aria-label^="${name}, "]`);
    /** A row of the tree matched by an aria-label selector, e.g. '[aria-label^="from-cli, succeeded"]'. */
    const rowWhere = (attrs) => view.locator(`.monaco-list-row${attrs}`);
    const list = view.locator(".monaco-list").first();
    const dialog = page.locator(".monaco-dialog-box");
    const menu = page.locator(".context-view .monaco-menu");
    const hover = page.locator(".workbench-hover-container");
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

    /**
     * Takes the mouse off the tree (to the right of the editor area, where
     * nothing shows a hover) and closes what it left open: a tooltip
     * (hover) can cover rows and stays while the mouse is on it, and a
     * context menu left open takes the next click.
     */
    async function calm() {
        const box = await page.locator(".part.editor").boundingBox();
        if (box) await page.mouse.move(box.x + box.width - 60, box.y + Math.min(box.height / 2, 300));
        if (await hover.isVisible()) await hover.waitFor({ state: "hidden", timeout: 1500 }).catch(() => {});
        // Escape also hides the notification toasts: only when something is still open.
        if ((await hover.isVisible()) || (await menu.isVisible())) {
            await page.keyboard.press("Escape");
            await menu.waitFor({ state: "hidden", timeout: 1000 }).catch(() => {});
        }
    }
    const shot = async (name) => {
        await calm();
        await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
    };

    /** Whether the locator's first element is wholly inside the list's visible area; else how far (px) from its middle it is, or false when it is not in the page. */
    async function inView(loc, within = list) {
        const [r, l] = await Promise.all([loc.first().boundingBox(), within.boundingBox()]);
        if (!r || !l) return false;
        return r.y >= l.y - 1 && r.y + r.height <= l.y + l.height + 1 ? true : r.y + r.height / 2 - (l.y + l.height / 2);
    }
    /** Scrolls a list (the tree) by dy pixels (the mouse wheel over it), and takes the mouse away again. */
    async function wheel(dy, within = list) {
        const l = await within.boundingBox();
        if (!l) return;
        await page.mouse.move(l.x + l.width / 2, l.y + Math.min(l.height / 2, 200));
        await page.mouse.wheel(0, dy);
        await sleep(100);
        await calm();
    }
    /** What the tree renders now: changes when it scrolled. */
    const rendered = (within = list) => within.locator(".monaco-list-row").evaluateAll((rows) => rows.map((r) => `${r.getAttribute("data-index")}@${r.getBoundingClientRect().top}`).join(","));
    /**
     * Brings a tree row into view. The tree renders only the rows in view,
     * so a row below (or above) them is not in the page at all: the tree is
     * scrolled from its top down until it is. Throws when the row is not
     * there.
     */
    async function scrollTo(loc, within = list) {
        for (let i = 0; i < 3; i++) {
            if ((await loc.count()) === 0) break;
            const where = await inView(loc, within);
            if (where === true) return;
            if (where === false) break;
            await wheel(where, within);
        }
        if ((await loc.count()) > 0 && (await inView(loc, within)) === true) return;
        // To the top (a step at a time: the wheel scrolls by a bounded amount), then down.
        const l0 = await within.boundingBox();
        const page0 = Math.max(100, Math.floor(((l0 && l0.height) || 400) * 0.6));
        for (let i = 0; i < 40; i++) {
            if ((await loc.count()) > 0) break;
            const before = await rendered(within);
            await wheel(-page0, within);
            if ((await rendered(within)) === before) break;
        }
        for (let i = 0; i < 40; i++) {
            if ((await loc.count()) > 0) {
                const where = await inView(loc, within);
                if (where === true) return;
                if (where !== false) {
                    await wheel(where, within);
                    continue;
                }
            }
            const before = await rendered(within);
            await wheel(page0, within);
            if ((await rendered(within)) === before) break; // the bottom
        }
        if ((await loc.count()) > 0 && (await inView(loc, within)) === true) return;
        throw new Error(`no row ${loc} (scrolled its list from top to bottom)`);
    }
    /**
     * Waits until a tree row is shown, and scrolls the tree to it (see
     * scrollTo): now and then the whole tree is looked through, as the row
     * may be out of view.
     */
    async function waitRow(loc, ms) {
        const end = Date.now() + ms;
        let error;
        for (let i = 0; ; i++) {
            if ((await loc.count()) > 0 || i % 4 === 3) {
                try {
                    await scrollTo(loc);
                    return;
                } catch (e) {
                    error = e;
                }
            }
            if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for tree row ${loc}${error ? `: ${error.message}` : ""}`);
            await loc.first().waitFor({ timeout: 500 }).catch(() => {});
        }
    }
    /**
     * Does something to a tree row, again (with short timeouts) until it
     * works or ms passed: the row is looked up fresh and scrolled into view
     * each time, and the mouse is taken away first. Rows move when rows
     * appear above them (agents, reviews, conflicts), are redrawn when
     * their agent changes, and a tooltip can cover them.
     */
    async function onRow(loc, what, act, ms = 20_000) {
        const end = Date.now() + ms;
        for (let attempt = 1; ; attempt++) {
            try {
                await calm();
                await scrollTo(loc);
                await act(loc.first());
                return;
            } catch (e) {
                if (Date.now() > end) throw new Error(`${what} (${attempt} attempts in ${ms} ms): ${e.message}`);
                await sleep(200);
            }
        }
    }
    /** Clicks a row (a finding opens its file). */
    const clickRow = (loc) => onRow(loc, `click ${loc}`, (r) => r.click({ timeout: 3000 }));
    /** Expands a row (unless it is). */
    const expandRow = (loc) =>
        onRow(loc, `expand ${loc}`, async (r) => {
            if ((await r.getAttribute("aria-expanded")) === "true") return;
            await r.locator(".monaco-tl-twistie").click({ timeout: 3000 });
            await loc.and(view.locator('[aria-expanded="true"]')).first().waitFor({ timeout: 2000 });
        });

    async function palette(command) {
        const input = page.locator(".quick-input-widget input");
        const item = page.locator(".quick-input-list .monaco-list-row.focused", { hasText: command });
        for (let i = 0; ; i++) {
            try {
                await page.keyboard.press("F1");
                await input.waitFor({ state: "visible", timeout: 5000 });
                await input.fill(`>${command}`);
                // Enter runs the highlighted command: wait until it is this one.
                await item.first().waitFor({ timeout: 5000 });
                break;
            } catch (e) {
                if (i === 2) throw e;
                await page.keyboard.press("Escape");
            }
        }
        await page.keyboard.press("Enter");
    }
    /** Answers the input box or quick pick whose title contains step (an empty answer takes the first item). */
    async function answer(step, text) {
        const title = page.locator(".quick-input-widget .quick-input-title", { hasText: step });
        await title.waitFor({ state: "visible", timeout: 10_000 });
        if (text !== undefined) {
            const input = page.locator(".quick-input-widget input").first();
            await input.fill(text);
            // Enter takes what the box shows.
            await page.waitForFunction(([sel, want]) => document.querySelector(sel)?.value === want, [".quick-input-widget input", text], { timeout: 5000 });
        }
        await page.keyboard.press("Enter");
        await title.waitFor({ state: "hidden", timeout: 10_000 });
    }
    /**
     * Picks an item of the context menu that is open. A menu ignores a
     * click that comes right after it opened (the release of the right
     * button must not pick an item): click until it closes. Never clicks
     * again once it closed (the item ran).
     */
    async function pickMenuItem(item) {
        const entry = menu.locator(".action-item", { hasText: item }).first();
        await entry.waitFor({ timeout: 5000 });
        const end = Date.now() + 10_000;
        while (await menu.isVisible()) {
            if (Date.now() > end) throw new Error(`the context menu did not take “${item}”`);
            await entry.click({ timeout: 2000 }).catch(() => {});
            await menu.waitFor({ state: "hidden", timeout: 1000 }).catch(() => {});
        }
    }
    /** Right-clicks a tree row (an agent's name, or a locator) and picks item of its context menu. */
    async function contextMenu(target, item) {
        const loc = typeof target === "string" ? row(target) : target;
        const entry = menu.locator(".action-item", { hasText: item }).first();
        await onRow(loc, `context menu “${item}” of ${loc}`, async (r) => {
            await r.click({ button: "right", timeout: 3000 });
            try {
                await entry.waitFor({ timeout: 3000 });
            } catch (e) {
                if (await menu.isVisible()) await page.keyboard.press("Escape");
                throw e;
            }
        });
        await pickMenuItem(item);
    }
    async function dialogButton(text, button) {
        const box = dialog.filter({ hasText: text });
        await box.waitFor({ state: "visible", timeout: 10_000 });
        await box.locator(".dialog-buttons .monaco-button", { hasText: button }).first().click({ timeout: 10_000 });
        await box.waitFor({ state: "hidden", timeout: 10_000 });
    }
    const agentDir = (name) => path.join(path.dirname(UI_REPO), `${path.basename(UI_REPO)}.worktrees`, name);
    /** The daemon's record of an agent, through the CLI (another client). */
    const record = async (name) => JSON.parse(await run(BIN, ["show", "--json", name], { cwd: UI_REPO }));
    /**
     * Clicks an agent's inline action (the buttons shown on the row). The
     * row is selected first (its buttons stay shown while it is selected),
     * then hovered; see onRow for the retries.
     */
    async function inline(name, label) {
        await onRow(row(name), `inline button “${label}” of ${name}`, async (r) => {
            await r.locator(".label-name").first().click({ timeout: 3000 });
            await r.hover({ timeout: 3000 });
            await r.locator(`.action-label[aria-label="${label}"]`).click({ timeout: 3000 });
        });
    }
    /** Closes every notification, so that the next one waited for is new. */
    async function clearToasts() {
        await palette("Notifications: Clear All Notifications");
        await page.locator(".notifications-toasts .notification-toast").first().waitFor({ state: "hidden", timeout: 10_000 }).catch(() => {});
    }
    /**
     * Runs fn on the notification with text: its toast, or (when the toast
     * is gone: toasts hide after 10 s, and only the newest three show, and
     * a merge brings a conflict notification for each agent) its entry in
     * the notification center, scrolled to.
     */
    async function onNotice(text, ms, fn) {
        try {
            await toast(text).first().waitFor({ timeout: ms });
            await fn(toast(text).first());
            return;
        } catch (e) {
            if (await toast(text).first().isVisible()) throw e;
            const center = page.locator(".notifications-center");
            const entries = center.locator(".monaco-list").first();
            const entry = entries.locator(".monaco-list-row", { hasText: text });
            try {
                if (!(await center.isVisible())) await palette("Notifications: Show Notifications");
                await entries.locator(".monaco-list-row").first().waitFor({ timeout: 3000 });
                await scrollTo(entry, entries);
            } catch (e2) {
                throw new Error(`${e.message}\nnor in the notification center: ${e2.message}`);
            }
            await fn(entry.first());
            // Not the palette: it would close the input box a button may have opened.
            await center.locator('.action-label[aria-label^="Hide Notifications"], .action-label.codicon-notifications-hide').first().click({ timeout: 2000 }).catch(() => {});
        }
    }
    /** Waits for the notification with text (see onNotice). */
    const waitNotice = (text, ms) => onNotice(text, ms, async () => {});
    /** Clicks a button of the notification with text (see onNotice). */
    const noticeButton = (text, button, ms = 10_000) =>
        onNotice(text, ms, async (n) => {
            await n.locator(".monaco-button", { hasText: button }).first().click({ timeout: 5000 });
        });

    try {
        await check("the workbench loads the repository", async () => {
            await page.goto(`${cs.base}/?folder=${encodeURIComponent(UI_REPO)}`);
            await page.locator(".monaco-workbench .part.activitybar").waitFor({ timeout: 60_000 });
            await page.locator(".explorer-folders-view .monaco-list-row").first().waitFor({ timeout: 60_000 });
        });

        await check('the activity bar opens "Background Agents", connected to the daemon', async () => {
            await page.locator('.part.activitybar .action-item [aria-label^="Background Agents"], .part.activitybar .action-item[aria-label^="Background Agents"]').first().click({ timeout: 20_000 });
            await view.locator(".welcome-view-content", { hasText: "No background agents" }).waitFor({ timeout: 30_000 });
            // A wider sidebar, so that descriptions (branch, age, diffstat) show in full.
            const editorLeft = (await page.locator(".part.editor").boundingBox()).x;
            for (const sash of await page.locator(".monaco-sash.vertical").all()) {
                const box = await sash.boundingBox();
                if (!box || box.height < 400 || Math.abs(box.x + box.width / 2 - editorLeft) > 10) continue;
                const y = box.y + box.height / 2;
                await page.mouse.move(box.x + box.width / 2, y);
                await page.mouse.down();
                await page.mouse.move(box.x + 150, y, { steps: 5 });
                await page.mouse.move(box.x + 280, y, { steps: 5 });
                await page.mouse.up();
                await page.mouse.move(box.x + 800, y);
                break;
            }
            await page.locator(".statusbar-item", { has: page.locator(".codicon-robot") }).waitFor({ timeout: 10_000 });
        });

        // Worktree creation waits (in a post-checkout hook) until the test has seen the progress.
        fs.writeFileSync(path.join(GATES, "progress.armed"), "");
        const name = "fix-add-in-calc-go";
        await check("spawn from the palette: task, agent and model, then a progress notification while the worktree is prepared", async () => {
            await palette("Background Agents: Spawn Agent…");
            await answer("(1/3): task", "Fix add in calc.go");
            // The agents are what the daemon says the repository can run (bgagents/agents), its default first.
            const pick = page.locator(".quick-input-widget .quick-input-list .monaco-list-row");
            await page.locator(".quick-input-widget .quick-input-title", { hasText: "(2/3): agent" }).waitFor({ timeout: 10_000 });
            await pick.filter({ hasText: "asker" }).first().waitFor({ timeout: 10_000 });
            const items = (await pick.allInnerTexts()).map((t) => t.replace(/\s+/g, " ").trim());
            if (!/^script\s*default · command$/.test(items[0]) || !items.some((t) => /^asker\s*claude$/.test(t))) throw new Error(`agent quick pick: ${JSON.stringify(items)}`);
            await answer("(2/3): agent");
            await answer("(3/3): model");
            await waitNotice(`bgagents: preparing ${name}`, 15_000);
            await waitRow(row(name), 10_000);
            await waitRow(rowWhere(`[aria-label^="${name}, provisioning"]`), 10_000);
            await shot("vscode-progress");
        });
        fs.writeFileSync(path.join(GATES, "progress"), "");

        await check("the agent finishes: the sidebar shows it, a notification offers Show Diff, Open Worktree, Merge", async () => {
            await onNotice(`Agent ${name} finished`, 30_000, async (t) => {
                for (const b of ["Show Diff", "Open Worktree", "Merge"]) await t.locator(".monaco-button", { hasText: b }).waitFor({ timeout: 2000 });
            });
            await waitRow(rowWhere(`[aria-label^="${name}, succeeded"]`), 5000);
            // The progress notification closed when the agent started.
            await toast(`bgagents: preparing ${name}`).waitFor({ state: "hidden", timeout: 10_000 });
            // The row is redrawn as the record changes: wait for the text rather than read it once.
            await row(name).filter({ hasText: /bgagents\/fix-add-in-calc-go · \w+ · 2 files \+2 −1/ }).waitFor({ timeout: 10_000 }).catch(async (e) => {
                throw new Error(`row text: ${JSON.stringify(await row(name).innerText().catch(() => ""))}: ${e.message}`);
            });
            await page.locator(".statusbar-item", { has: page.locator(".codicon-robot") }).waitFor({ timeout: 5000 });
            await shot("vscode-notification");
        });

        await check("Show Diff opens a diff editor with the change against the base", async () => {
            await noticeButton(`Agent ${name} finished`, "Show Diff");
            const editor = page.locator(".monaco-diff-editor", { hasText: "return a + b" }).first();
            await editor.waitFor({ timeout: 20_000 });
            await page.locator(".monaco-diff-editor", { hasText: "return a - b" }).first().waitFor({ timeout: 5000 });
            await page.locator(".monaco-diff-editor .char-insert, .monaco-diff-editor .line-insert").first().waitFor({ state: "attached", timeout: 10_000 });
            await shot("vscode-diff");
        });

        await check("an agent spawned by another client (the CLI) appears in the sidebar", async () => {
            await run(BIN, ["spawn", "--name", "from-cli", "Write usage notes from the command line"], { cwd: UI_REPO });
            await waitRow(rowWhere('[aria-label^="from-cli, succeeded"]'), 30_000);
            // Show the first agent's changed files too.
            await expandRow(row(name));
            await waitRow(rowWhere('[aria-label^="calc.go"]'), 10_000);
            await shot("vscode-sidebar");
        });

        await check("Show Log (context menu) shows the agent's activity in an output channel", async () => {
            await contextMenu("from-cli", "Show Log");
            await page.locator(".part.panel .view-lines", { hasText: "working on: Write usage notes from the command line" }).waitFor({ timeout: 15_000 });
            await page.locator(".part.panel .view-lines", { hasText: "succeeded — agent exited 0" }).waitFor({ timeout: 15_000 });
            await shot("log");
        });

        await check("Show Log, Merge and Discard are inline buttons of an agent; Show Log (inline) replaces the log shown", async () => {
            await onRow(row("from-cli"), "the inline buttons of from-cli", async (r) => {
                await r.locator(".label-name").first().click({ timeout: 3000 });
                await r.hover({ timeout: 3000 });
                for (const label of ["Open Worktree in New Window", "Show Diff", "Show Log", "Send Follow-up…", "Merge…", "Discard…"]) {
                    await r.locator(`.action-label[aria-label="${label}"]`).waitFor({ timeout: 3000 });
                }
                if ((await r.locator('.action-label[aria-label="Cancel"]').count()) !== 0) throw new Error("a finished agent offers Cancel");
            });
            await inline(name, "Show Log");
            await page.locator(".part.panel .view-lines", { hasText: "working on: Fix add in calc.go" }).waitFor({ timeout: 15_000 });
            await page.locator(".part.panel .view-lines", { hasText: "working on: Write usage notes" }).waitFor({ state: "detached", timeout: 5000 });
        });

        await check("Open Worktree in New Window (inline button) opens the worktree as a folder in a new window", async () => {
            const opened = ctx.waitForEvent("page", { timeout: 30_000 });
            opened.catch(() => {}); // awaited below; a failed click must not leave it unhandled
            await inline("from-cli", "Open Worktree in New Window");
            const win = await opened;
            await win.waitForURL(/folder=/, { timeout: 15_000 });
            const folder = new URL(win.url()).searchParams.get("folder");
            if (folder !== agentDir("from-cli")) throw new Error(`new window opened ${folder}`);
            await win.close();
        });

        await check("the lightbulb's “Send to background agent” asks for the task and spawns an agent", async () => {
            await page.keyboard.press("Control+P");
            const input = page.locator(".quick-input-widget input");
            await input.waitFor({ state: "visible", timeout: 10_000 });
            await input.fill("calc.go");
            await page.locator(".quick-input-list .monaco-list-row", { hasText: "calc.go" }).first().waitFor({ timeout: 10_000 });
            await page.keyboard.press("Enter");
            const lines = page.locator(".editor-instance .monaco-editor .view-lines", { hasText: "func add" });
            await lines.waitFor({ timeout: 15_000 });
            await page.locator(".editor-instance .monaco-editor .view-line", { hasText: "return a - b" }).click();
            await page.keyboard.press("Home");
            await page.keyboard.press("Shift+End");
            // The editor has the focus and shows the selection before the lightbulb is asked for.
            await page.locator(".editor-instance .monaco-editor.focused .selected-text").first().waitFor({ state: "attached", timeout: 10_000 });
            const action = page.locator(".action-widget .monaco-list-row", { hasText: "Send to background agent" }).first();
            // The code actions may not be known yet ("No code actions available"): ask again.
            for (let i = 0; ; i++) {
                await page.keyboard.press("Control+.");
                try {
                    await action.waitFor({ timeout: 5000 });
                    break;
                } catch (e) {
                    if (i === 3) throw e;
                    await page.keyboard.press("Escape");
                    await page.locator(".editor-instance .monaco-editor.focused .selected-text").first().waitFor({ state: "attached", timeout: 10_000 });
                }
            }
            await action.click();
            await answer("(1/3): task", "Make add add");
            await answer("(2/3): agent");
            await answer("(3/3): model");
            await waitRow(rowWhere('[aria-label^="make-add-add, "]'), 15_000);
            await waitNotice("Agent make-add-add finished", 30_000);
        });

        await check("the sidebar's + spawns an agent", async () => {
            await clearToasts();
            await calm();
            await page.locator('.part.sidebar .action-label[aria-label="Spawn Agent…"]').first().click({ timeout: 10_000 });
            await answer("(1/3): task", "Plus button notes");
            await answer("(2/3): agent");
            await answer("(3/3): model");
            await waitRow(row("plus-button-notes"), 15_000);
            await waitNotice("Agent plus-button-notes finished", 30_000);
            if ((await record("plus-button-notes")).task !== "Plus button notes") throw new Error("wrong task");
        });

        await check("the editor's context menu “Send Selection to Agent…” sends the selected line as context", async () => {
            await page.keyboard.press("Control+P");
            const input = page.locator(".quick-input-widget input");
            await input.waitFor({ state: "visible", timeout: 10_000 });
            await input.fill("calc.go");
            await page.locator(".quick-input-list .monaco-list-row", { hasText: "calc.go" }).first().waitFor({ timeout: 10_000 });
            await page.keyboard.press("Enter");
            const line = page.locator(".editor-instance .monaco-editor .view-line", { hasText: "func add(a, b int) int {" });
            // The first word of the line: inside the selection, which a right-click there keeps.
            const word = line.locator("span span").first();
            for (let i = 0; ; i++) {
                try {
                    await calm();
                    await word.click({ timeout: 5000 });
                    await page.keyboard.press("End");
                    await page.keyboard.press("Shift+Home");
                    await page.locator(".editor-instance .monaco-editor.focused .selected-text").first().waitFor({ state: "attached", timeout: 5000 });
                    await word.click({ button: "right", timeout: 5000 });
                    await menu.locator(".action-item", { hasText: "Send Selection to Agent…" }).first().waitFor({ timeout: 5000 });
                    break;
                } catch (e) {
                    if (i === 2) throw e;
                    if (await menu.isVisible()) await page.keyboard.press("Escape");
                }
            }
            await pickMenuItem("Send Selection to Agent…");
            await answer("(1/3): task", "Explain the selected line");
            await answer("(2/3): agent");
            await answer("(3/3): model");
            await waitRow(row("explain-the-selected-line"), 15_000);
            const a = await record("explain-the-selected-line");
            const c = a.context || {};
            if (c.file !== "calc.go" || c.startLine !== 4 || c.endLine !== 4 || c.text !== "func add(a, b int) int {") throw new Error(`context: ${JSON.stringify(c)}`);
            await waitNotice("Agent explain-the-selected-line finished", 30_000);
        });

        await check("Review… (inline): another vendor is offered first; the verdict is announced, Show Findings lists the findings in the Problems panel and under the agent, and a finding opens its file in the worktree", async () => {
            await clearToasts();
            await inline("plus-button-notes", "Review…");
            await page.locator(".quick-input-widget .quick-input-title", { hasText: "(1/2): reviewer" }).waitFor({ timeout: 10_000 });
            const first = page.locator(".quick-input-widget .quick-input-list .monaco-list-row").first();
            await first.waitFor({ timeout: 10_000 });
            const text = (await first.innerText()).replace(/\s+/g, " ").trim();
            if (!/^asker\s*claude · another vendor than the writer's \(command\)$/.test(text)) throw new Error(`first reviewer offered: ${JSON.stringify(text)}`);
            await answer("(1/2): reviewer");
            await answer("(2/2): model");
            const verdict = "Review of plus-button-notes by review-plus-button-notes (asker): changes requested, 2 findings";
            await waitNotice(verdict, 30_000);
            await waitRow(rowWhere('[aria-label^="plus-button-notes, succeeded"][aria-label*="✗ changes requested"]'), 10_000);
            await noticeButton(verdict, "Show Findings");
            await page.locator(".part.panel .monaco-list-row", { hasText: "add has no test" }).first().waitFor({ timeout: 10_000 });
            await waitRow(rowWhere('[aria-label^="Review: changes requested by asker"]'), 10_000);
            const finding = rowWhere('[aria-label="add has no test, calc.go:5"]');
            await waitRow(finding, 10_000);
            if ((await row("review-plus-button-notes").count()) !== 0) throw new Error("the reviewer has a row of its own");
            await shot("review");
            // The worktree's calc.go (fixed), not the main checkout's.
            await clickRow(finding);
            await page.locator(".tabs-container .tab.active", { hasText: "calc.go" }).waitFor({ timeout: 10_000 });
            await page.locator(".editor-instance .monaco-editor .view-line", { hasText: "return a + b" }).first().waitFor({ timeout: 10_000 });
        });

        await check("agents that changed the same line: their rows warn, and a child names the other agent and the file", async () => {
            // Every agent here added its task to a new NOTES.md.
            await waitRow(rowWhere('[aria-label^="make-add-add, succeeded"][aria-label*="⚠ conflicts with"]'), 15_000);
            await expandRow(row("make-add-add"));
            await waitRow(rowWhere('[aria-label="make-add-add conflicts with plus-button-notes: NOTES.md"]'), 10_000);
            await shot("conflicts");
        });

        await check("Spawn Variants… starts a fan-out shown as one group; Integrate Variants (its context menu) merges them in a new agent", async () => {
            await clearToasts();
            await palette("Background Agents: Spawn Variants…");
            await answer("(1/3): task", "Try two ways");
            await answer("(2/3): agents");
            await answer("(3/3): how many");
            const group = "Try two ways — 2 variants";
            await waitRow(row(group), 15_000);
            await waitRow(rowWhere('[aria-label^="try-two-ways-v1, succeeded"]'), 30_000);
            await waitRow(rowWhere('[aria-label^="try-two-ways-v2, succeeded"]'), 30_000);
            await shot("vscode-group");
            await contextMenu(group, "Integrate Variants");
            await answer("Integrate try-two-ways-v1, try-two-ways-v2");
            await waitRow(rowWhere('[aria-label^="integrate-try-two-ways-v1, succeeded"]'), 30_000);
            const a = await record("integrate-try-two-ways-v1");
            if ((a.integrates || []).length !== 2) throw new Error(`integrates: ${JSON.stringify(a.integrates)}`);
            const row1 = await row("integrate-try-two-ways-v1").first().getAttribute("aria-label");
            if (!/integrates try-two-ways-v1, try-two-ways-v2/.test(row1)) throw new Error(`row: ${row1}`);
        });

        await check("Spawn After… (context menu) starts a pipeline step on the agent's branch; its row says whom it follows", async () => {
            await contextMenu("explain-the-selected-line", "Spawn After…");
            await answer("Spawn after explain-the-selected-line (1/3): task", "Next step notes");
            await answer("(2/3): agent");
            await answer("(3/3): model");
            await waitRow(rowWhere('[aria-label^="next-step-notes, succeeded"][aria-label*="after explain-the-selected-line"]'), 30_000);
            const a = await record("next-step-notes");
            if (a.base !== "bgagents/explain-the-selected-line") throw new Error(`base: ${a.base}`);
        });

        await check("Send Follow-up… (inline) runs the agent again with the message", async () => {
            await inline("from-cli", "Send Follow-up…");
            await answer("Follow-up for agent from-cli", "Add a usage example");
            await until("from-cli's second run to end", 30_000, async () => {
                const a = await record("from-cli");
                return a.runs === 2 && a.state === "succeeded";
            });
            await waitRow(rowWhere('[aria-label^="from-cli, succeeded"]'), 10_000);
            const logs = await run(BIN, ["logs", "from-cli"], { cwd: UI_REPO });
            if (!/✉ you: Add a usage example/.test(logs)) throw new Error(`log: ${logs}`);
        });

        await check("an agent that needs input is announced; Reply asks for the answer and whether to allow the refused tool, and it runs again", async () => {
            await clearToasts();
            await run(BIN, ["spawn", "--agent", "asker", "--name", "ui-ask", "Write the answer ASK"], { cwd: UI_REPO });
            await onNotice("Agent ui-ask needs input", 30_000, async (t) => {
                for (const b of ["Reply", "Show Log", "Open Worktree"]) await t.locator(".monaco-button", { hasText: b }).waitFor({ timeout: 2000 });
            });
            await waitRow(rowWhere('[aria-label^="ui-ask, needs input"]'), 10_000);
            await page.locator('.statusbar-item[aria-label="Background Agents: 1 needs input"]').waitFor({ timeout: 5000 });
            await shot("needs-input");
            await noticeButton("Agent ui-ask needs input", "Reply");
            await answer("Follow-up for agent ui-ask", "Yes, write it");
            await answer("was refused: Write"); // the first item: allow it for this run
            await waitNotice("Agent ui-ask finished", 30_000);
            const a = await record("ui-ask");
            if (a.runs !== 2 || a.state !== "succeeded") throw new Error(`ui-ask: ${a.state}, ${a.runs} runs`);
            const logs = await run(BIN, ["logs", "ui-ask"], { cwd: UI_REPO });
            if (!/allowed tools: Write/.test(logs)) throw new Error(`the refused tool was not allowed:\n${logs}`);
            if (fs.readFileSync(path.join(agentDir("ui-ask"), "ANSWER.md"), "utf8") !== "Yes, write it\n") throw new Error("no ANSWER.md");
        });

        await check("Cancel (inline) asks, then stops a running agent; it is shown cancelled", async () => {
            const gate = path.join(GATES, "ui-never");
            await run(BIN, ["spawn", "--name", "ui-slow", `Slow work WAIT ${gate}`], { cwd: UI_REPO });
            await waitRow(rowWhere('[aria-label^="ui-slow, running"]'), 15_000);
            // Cancel once the agent itself runs (it said so).
            await until("ui-slow to wait", 15_000, async () => /waiting for/.test(await run(BIN, ["logs", "ui-slow"], { cwd: UI_REPO })));
            await clearToasts();
            await inline("ui-slow", "Cancel");
            await dialogButton("Stop agent ui-slow?", "Stop Agent");
            await waitNotice("Agent ui-slow was cancelled", 30_000);
            await waitRow(rowWhere('[aria-label^="ui-slow, cancelled"]'), 10_000);
            if ((await record("ui-slow")).state !== "cancelled") throw new Error("not cancelled");
        });

        await check("Merge… (inline) asks, lands the branch in main, and the agent leaves the sidebar", async () => {
            await clearToasts();
            await inline("from-cli", "Merge…");
            await dialogButton("Merge bgagents/from-cli into main?", "Merge");
            await waitNotice("Merged bgagents/from-cli into main", 15_000);
            await row("from-cli").waitFor({ state: "detached", timeout: 15_000 });
            const notes = fs.readFileSync(path.join(UI_REPO, "NOTES.md"), "utf8");
            if (!/Write usage notes from the command line/.test(notes) || !/Add a usage example/.test(notes)) throw new Error(`NOTES.md in main: ${notes}`);
            const merged = await record("from-cli");
            if (merged.state !== "merged") throw new Error(`from-cli is ${merged.state}`);
            // Its work is in main's checkout (NOTES.md above); worktree and branch are gone.
            if (fs.existsSync(agentDir("from-cli"))) throw new Error("worktree still there");
            if (execFileSync("git", ["branch", "--list", "bgagents/from-cli"], { cwd: UI_REPO, encoding: "utf8" }).trim() !== "") throw new Error("branch still there");
        });

        await check("Merge… of an agent that now conflicts with main: the dialog warns, and the daemon's refusal is shown", async () => {
            await waitRow(rowWhere('[aria-label^="plus-button-notes, "][aria-label*="base main"]'), 15_000);
            await clearToasts();
            await inline("plus-button-notes", "Merge…");
            await dialog.filter({ hasText: "the daemon will refuse it" }).waitFor({ timeout: 10_000 });
            await dialogButton("Merge bgagents/plus-button-notes into main?", "Merge");
            await waitNotice("bgagents/plus-button-notes into main would conflict in: NOTES.md", 15_000);
            if ((await record("plus-button-notes")).state !== "succeeded") throw new Error("plus-button-notes changed state");
        });

        await check("Discard (context menu) asks, then asks again before losing commits; the agent leaves the sidebar and its worktree is gone", async () => {
            if (!fs.existsSync(agentDir(name))) throw new Error(`no worktree ${agentDir(name)} before discard`);
            await contextMenu(name, "Discard…");
            await dialogButton(`Discard agent ${name}?`, "Discard");
            await dialogButton("has work that would be lost", "Discard Anyway");
            await row(name).waitFor({ state: "detached", timeout: 15_000 });
            await until(`worktree ${agentDir(name)} to be removed`, 10_000, () => !fs.existsSync(agentDir(name)));
            const branches = execFileSync("git", ["branch", "--list", `bgagents/${name}`], { cwd: UI_REPO, encoding: "utf8" });
            if (branches.trim() !== "") throw new Error(`branch still exists: ${branches}`);
        });
    } finally {
        await ctx.close().catch(() => {});
        await stopGroup(cs.child);
    }
}

// ---- extension-host tests ------------------------------------------------------

/**
 * The extension-host tests, in three windows one after the other; the
 * window's folder picks the suite (test/exthost/index.ts): the repository
 * itself, a folder without a repository, and the folder that contains the
 * repository. Each suite writes RESULTS/SUITE.txt.
 */
async function extHostTests() {
    const results = path.join(WORK, "exthost-results");
    fs.mkdirSync(results, { recursive: true });
    process.env.BGAGENTS_TEST_RESULTS = results; // inherited by code-server's extension hosts
    const noRepo = path.join(WORK, "no-repository");
    fs.mkdirSync(noRepo, { recursive: true });
    fs.writeFileSync(path.join(noRepo, "notes.txt"), "not a repository\n");
    const p = profile("exthost");
    // enable-smoke-test-driver makes code-server honour extensionTestsPath in the URL payload.
    const cs = await startCodeServer(p, "code-server-exthost", EXT_REPO, ["--vscode-option", "enable-smoke-test-driver"]);
    const ctx = await browser("exthost");
    try {
        for (const [suite, folder] of [["main", EXT_REPO], ["norepo", noRepo], ["nested", path.dirname(EXT_REPO)]]) {
            const page = await ctx.newPage();
            currentPage = page;
            try {
                const host = new URL(cs.base).host;
                const exited = new Promise((resolve) => {
                    void page.exposeFunction("codeAutomationExit", (code) => resolve(code));
                    void page.exposeFunction("codeAutomationLog", () => {});
                });
                page.on("console", (m) => {
                    const t = m.text();
                    const i = t.indexOf("[ext-test] ");
                    if (i >= 0) log(`  exthost: ${t.slice(i + 11)}`);
                });
                const payload = [
                    ["extensionDevelopmentPath", `vscode-remote://${host}${EXT}`],
                    ["extensionTestsPath", `vscode-remote://${host}${path.join(EXT, "out/exthost/index.js")}`],
                ];
                await page.goto(`${cs.base}/?folder=${encodeURIComponent(folder)}&payload=${encodeURIComponent(JSON.stringify(payload))}`);
                const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r("timeout"), 150_000))]);
                const file = path.join(results, `${suite}.txt`);
                const summary = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
                const m = /^(\d+) passed, (\d+) failed$/m.exec(summary);
                await check(`extension-host tests, ${suite} (${m ? `${m[1]} passed, ${m[2]} failed` : "no summary"}; exit code ${code})`, async () => {
                    if (code !== 0 || !m || m[2] !== "0") throw new Error(`extension-host tests failed; results:\n${summary}\nlog: ${cs.logFile}`);
                });
            } finally {
                await page.close().catch(() => {});
            }
        }
    } finally {
        await ctx.close().catch(() => {});
        await stopGroup(cs.child);
    }
}

(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    if (ONLY === "" || ONLY === "ui") await uiTests();
    if (ONLY === "" || ONLY === "exthost") await extHostTests();
    log(`vscode tests took ${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
    log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
})().catch((e) => {
    console.error(e);
    for (const g of groups) killGroup(g, "SIGKILL");
    process.exit(2);
});
