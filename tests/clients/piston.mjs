// Drives the npm piston-client for tests/compat/test_piston.py: node piston.mjs <server> <requests.json>
// <requests.json>: [["runtimes"], ["execute", language, code, config], ...]; prints the answers as JSON.
import { readFileSync } from "node:fs";
import piston from "piston-client";

const [server, file] = process.argv.slice(2);
const client = piston({ server });
const answers = [];
for (const [call, ...args] of JSON.parse(readFileSync(file, "utf8"))) {
  answers.push(call === "runtimes" ? await client.runtimes() : await client.execute(...args));
}
process.stdout.write(JSON.stringify(answers));
