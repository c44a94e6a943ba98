// Bundles the extension (dist/main.js) and, with --tests, the unit tests
// (out/unit/*.test.js) and the extension-host tests (out/exthost/index.js).
//   node esbuild.mjs [--production] [--watch] [--tests]
import * as esbuild from "esbuild";
import * as fs from "node:fs";
import * as path from "node:path";

const args = new Set(process.argv.slice(2));
const production = args.has("--production");

/** @type {import("esbuild").BuildOptions} */
const common = {
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node22",
    sourcemap: production ? false : "linked",
    logLevel: "warning",
    external: ["vscode"],
};

if (args.has("--tests")) {
    const unit = fs.readdirSync("test/unit").filter((f) => f.endsWith(".test.ts")).map((f) => path.join("test/unit", f));
    fs.rmSync("out", { recursive: true, force: true });
    // Unit tests run under plain Node, without VS Code: lsp_ext.ts's message
    // types come from the protocol package the language client is built on.
    await esbuild.build({ ...common, entryPoints: unit, outdir: "out/unit", alias: { "vscode-languageclient/node": "vscode-languageserver-protocol/node" } });
    await esbuild.build({ ...common, entryPoints: ["test/exthost/index.ts"], outfile: "out/exthost/index.js" });
} else {
    const options = { ...common, entryPoints: ["src/main.ts"], outfile: "dist/main.js", minify: production, metafile: true };
    if (args.has("--watch")) {
        const ctx = await esbuild.context(options);
        await ctx.watch();
        console.log("watching src/ …");
    } else {
        fs.rmSync("dist", { recursive: true, force: true });
        const result = await esbuild.build(options);
        const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
        console.log(`dist/main.js: ${(bytes / 1024).toFixed(0)} KiB${production ? " (production)" : ""}`);
    }
}
