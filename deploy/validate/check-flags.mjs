// check-flags.mjs: every ibrl flag a rendered manifest uses must be accepted by the binary.
//
// usage: node check-flags.mjs --bin-dir DIR FILE.yaml...
//
// Design. For every container of every pod template (MPIJob templates included) the command
// line is searched for ibrl binaries: directly (command: [/opt/ibrl/bin/ibrl-replay]), after a
// launcher (mpirun ... /opt/ibrl/bin/ibrl-learner ...), or inside an `sh -c` script (split into
// simple commands at ; && || | and newlines). Each `--flag` after a binary must appear as
// `--flag` in `DIR/<binary> --help`, or in `DIR/<binary> <command> --help` for binaries with
// commands (ibrl-demos generate, ibrl-replayctl import-demos, ...). Environment variables
// IBRL_<ROLE>_<FLAG> (the binaries read them as --<flag>) must name a flag of a binary of that
// role that the container runs. The help texts are the binaries' own, so a renamed or removed
// flag turns this red without any list kept here. Prints "FAIL <object>: <message>" per problem,
// "<file>: N passed, N failed" (checked flags) after each file and the total when there are
// several; exit 1 on any failure, 2 on bad usage or a missing binary.
import { readFileSync, existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join, basename } from "node:path";
// The npm dependencies live next to the installed copy of this script (setup.sh), not in the source tree.
const { parseAllDocuments } = await import("yaml").catch(() => {
  console.error("check-flags: the npm package 'yaml' is missing (HINT: deploy/validate/setup.sh <build>/deploy-tools, then run the copy there)");
  process.exit(2);
});

let binDir = null;
const files = [];
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--bin-dir" && i + 1 < argv.length) binDir = argv[++i];
    else if (argv[i] === "--help" || argv[i] === "-h") {
      console.log("usage: node check-flags.mjs --bin-dir DIR FILE.yaml...");
      process.exit(0);
    } else if (argv[i].startsWith("-")) usage(`unknown flag '${argv[i]}'`);
    else files.push(argv[i]);
  }
  if (!binDir) usage("--bin-dir is required");
  if (files.length === 0) usage("no manifest file given");
}
function usage(msg) {
  console.error(`check-flags: ${msg} (HINT: node check-flags.mjs --bin-dir <build>/bin FILE.yaml...)`);
  process.exit(2);
}

// Which role prefix of IBRL_<ROLE>_<FLAG> each binary reads.
const ENV_ROLE = { "ibrl-replay": "REPLAY", "ibrl-replayctl": "REPLAY", "ibrl-actor": "ACTOR", "ibrl-learner": "LEARNER" };

const helpCache = new Map();
// The --help text of `bin [command]`, or null if the binary is missing.
function help(bin, command) {
  const key = `${bin} ${command ?? ""}`;
  if (helpCache.has(key)) return helpCache.get(key);
  const path = join(binDir, bin);
  let text = null;
  if (existsSync(path)) {
    const r = spawnSync(path, command ? [command, "--help"] : ["--help"], { encoding: "utf8", timeout: 10000 });
    text = r.status === 0 ? `${r.stdout}${r.stderr}` : "";
  }
  helpCache.set(key, text);
  return text;
}
const accepts = (text, flag) => new RegExp(`(^|[^A-Za-z0-9-])${flag.replace(/[-]/g, "\\-")}(?![A-Za-z0-9-])`, "m").test(text);

// Splits a shell script into simple commands (arrays of words). Handles quotes and the
// separators we use; it is a checker's tokenizer, not a shell.
function shellCommands(script) {
  const cmds = [];
  let words = [];
  let cur = "";
  let q = null;
  let inWord = false;
  const endWord = () => {
    if (inWord) words.push(cur);
    cur = "";
    inWord = false;
  };
  const endCmd = () => {
    endWord();
    if (words.length) cmds.push(words);
    words = [];
  };
  for (let i = 0; i < script.length; i++) {
    const ch = script[i];
    if (q) {
      if (ch === q) q = null;
      else cur += ch;
      continue;
    }
    if (ch === "\\" && script[i + 1] === "\n") {
      i++; // line continuation: the command goes on
    } else if (ch === "'" || ch === '"') {
      q = ch;
      inWord = true;
    } else if (ch === "#" && !inWord) {
      while (i < script.length && script[i] !== "\n") i++;
      endCmd();
    } else if (ch === "\n" || ch === ";" || ch === "|" || ch === "&") {
      endCmd();
    } else if (ch === " " || ch === "\t") {
      endWord();
    } else {
      cur += ch;
      inWord = true;
    }
  }
  endCmd();
  return cmds;
}

// Invocations [binary, words after it] of ibrl binaries in one container.
function invocations(container) {
  const argv = [...(container.command ?? []), ...(container.args ?? [])].map(String);
  const out = [];
  const scan = (words) => {
    const i = words.findIndex((w) => /^ibrl-[a-z-]+$/.test(basename(w)));
    if (i >= 0) out.push([basename(words[i]), words.slice(i + 1)]);
  };
  if (/(^|\/)(ba)?sh$/.test(argv[0] ?? "") && argv.includes("-c")) {
    for (const words of shellCommands(argv[argv.indexOf("-c") + 1] ?? "")) scan(words);
  } else {
    scan(argv);
  }
  return out;
}

function podTemplates(o) {
  const s = o.spec ?? {};
  if (o.kind === "MPIJob") return Object.values(s.mpiReplicaSpecs ?? {}).map((r) => r?.template).filter(Boolean);
  if (o.kind === "CronJob") return [s.jobTemplate?.spec?.template].filter(Boolean);
  return [s.template].filter(Boolean);
}

let passed = 0;
let failed = 0;
let missing = 0;
for (const file of files) {
  const before = [passed, failed + missing];
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    console.error(`check-flags: cannot read ${file}: ${e.message}`);
    process.exit(2);
  }
  for (const doc of parseAllDocuments(text)) {
    const o = doc.toJS();
    if (!o || typeof o !== "object") continue;
    const id = `${o.kind}/${o.metadata?.name}`;
    for (const tpl of podTemplates(o)) {
      for (const c of [...(tpl.spec?.initContainers ?? []), ...(tpl.spec?.containers ?? [])]) {
        const where = `${id} container '${c.name}'`;
        const calls = invocations(c);
        for (const [bin, words] of calls) {
          const top = help(bin);
          if (top === null) {
            console.log(`FAIL ${where}: ${bin} is not in ${binDir} (HINT: build it: cmake --build <build> --target ${bin})`);
            missing++;
            continue;
          }
          // A command is the first bare word that the top-level help names and that has a help of its own.
          let texts = [top];
          let command = null;
          for (const w of words) {
            if (w.startsWith("-")) continue;
            if (/^[a-z][a-z-]*$/.test(w) && accepts(top, w)) {
              const sub = help(bin, w);
              if (sub && sub !== top) {
                command = w;
                texts = [top, sub];
              }
            }
            break;
          }
          for (const w of words) {
            if (!w.startsWith("--")) continue;
            const flag = w.split("=")[0];
            if (texts.some((t) => accepts(t, flag))) passed++;
            else {
              failed++;
              console.log(`FAIL ${where}: ${bin}${command ? ` ${command}` : ""} does not accept ${flag} (not in its --help)`);
            }
          }
        }
        // IBRL_<ROLE>_<FLAG> variables.
        const names = (c.env ?? []).map((e) => e.name);
        for (const name of names) {
          const m = /^IBRL_(REPLAY|ACTOR|LEARNER)_([A-Z0-9_]+)$/.exec(name);
          if (!m) continue;
          const flag = `--${m[2].toLowerCase().replace(/_/g, "-")}`;
          const bins = [...new Set(calls.map(([b]) => b))].filter((b) => ENV_ROLE[b] === m[1]);
          if (bins.length === 0) {
            failed++;
            console.log(`FAIL ${where}: env ${name} is for an ibrl ${m[1].toLowerCase()} binary, but the container runs none`);
          } else if (bins.some((b) => help(b) !== null && accepts(help(b), flag))) passed++;
          else {
            failed++;
            console.log(`FAIL ${where}: env ${name} means ${flag}, which ${bins.join("/")} does not accept`);
          }
        }
      }
    }
  }
  // One closing line per file, so one run can check many files and each stays attributable.
  console.log(`${file}: ${passed - before[0]} passed, ${failed + missing - before[1]} failed`);
}
if (files.length > 1) console.log(`${passed} passed, ${failed + missing} failed`);
process.exit(missing ? 2 : failed ? 1 : 0);
