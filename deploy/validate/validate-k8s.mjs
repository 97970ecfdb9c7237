// validate-k8s.mjs: offline validation of rendered Kubernetes manifests (one overlay per file).
//
// usage: node validate-k8s.mjs [--external-secret NAME]... FILE.yaml...
//
// Design. Four layers, all offline (shared/docs/deploy.md section 5):
//  1. schema: kubernetes-models' compiled validators (types, enums, required fields) for every
//     built-in kind; an unknown apiVersion/kind fails;
//  2. unknown fields: TypeScript over kubernetes-models' interfaces (an object literal with a
//     misspelled field is error TS2353), since layer 1 accepts unknown fields;
//  3. MPIJob (a CRD kubernetes-models does not know): a strict hand-written ajv schema of the
//     v2beta1 fields we use, and both pod templates through layers 1 and 2 as PodTemplateSpec;
//  4. cross-references within one file: selectors, governing Services, probe ports, volumes,
//     ConfigMap/Secret references and keys, $(VAR) and $VAR references, resources, image
//     placeholders, PDB selectors, and the counts of the ibrl-endpoints ConfigMap against the
//     replicas (REPLAY_SHARDS = replay StatefulSet replicas = entries of REPLAY_LIST, NUM_ACTORS
//     = actor replicas, LEARNER_RANKS = MPIJob workers x slotsPerWorker).
// Each file is checked on its own (cross-references are per overlay). Prints "FAIL <object>:
// <message>" per problem, then "N passed, N failed" (objects), and exits 1 on any failure,
// 2 on bad usage or an unreadable file.
import { readFileSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
// The npm dependencies live next to the installed copy of this script (setup.sh), not in the source tree.
const missing = () => {
  console.error("validate-k8s: npm packages missing (HINT: deploy/validate/setup.sh <build>/deploy-tools, then run the copy there)");
  process.exit(2);
};
const { parseAllDocuments } = await import("yaml").catch(missing);
const { default: Ajv } = await import("ajv").catch(missing);

const HERE = dirname(fileURLToPath(import.meta.url));
const PLACEHOLDER_IMAGE = "ibrl-image";

// ---- command line ----
const files = [];
const externalSecrets = new Set();
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") {
      console.log("usage: node validate-k8s.mjs [--external-secret NAME]... FILE.yaml...");
      process.exit(0);
    } else if (a === "--external-secret") {
      if (i + 1 >= argv.length) usage("--external-secret needs a Secret name");
      externalSecrets.add(argv[++i]);
    } else if (a.startsWith("-")) {
      usage(`unknown flag '${a}'`);
    } else {
      files.push(a);
    }
  }
  if (files.length === 0) usage("no manifest file given");
}

function usage(msg) {
  console.error(`validate-k8s: ${msg} (HINT: node validate-k8s.mjs [--external-secret NAME]... FILE.yaml...)`);
  process.exit(2);
}

// ---- layer 3: the MPIJob v2beta1 schema (fields of mpi-operator v0.8.x that we may use) ----
const replicaSpec = (launcher) => ({
  type: "object",
  additionalProperties: false,
  required: ["template"],
  properties: {
    replicas: launcher ? { const: 1 } : { type: "integer", minimum: 1 },
    restartPolicy: { enum: launcher ? ["Never", "OnFailure"] : ["Never", "OnFailure", "Always", "ExitCode"] },
    template: { type: "object" }, // checked as a PodTemplateSpec by layers 1 and 2
  },
});
const MPIJOB_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["apiVersion", "kind", "metadata", "spec"],
  properties: {
    apiVersion: { const: "kubeflow.org/v2beta1" },
    kind: { const: "MPIJob" },
    metadata: {
      type: "object",
      required: ["name"],
      properties: { name: { type: "string", pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", maxLength: 40 } },
    },
    spec: {
      type: "object",
      additionalProperties: false,
      required: ["mpiReplicaSpecs"],
      properties: {
        slotsPerWorker: { type: "integer", minimum: 0 },
        sshAuthMountPath: { type: "string", pattern: "^/" },
        mpiImplementation: { enum: ["OpenMPI", "Intel", "MPICH"] },
        launcherCreationPolicy: { enum: ["AtStartup", "WaitForWorkersReady"] },
        runLauncherAsWorker: { type: "boolean" },
        runPolicy: {
          type: "object",
          additionalProperties: false,
          properties: {
            cleanPodPolicy: { enum: ["None", "Running", "All"] },
            ttlSecondsAfterFinished: { type: "integer", minimum: 0 },
            activeDeadlineSeconds: { type: "integer", minimum: 0 },
            backoffLimit: { type: "integer", minimum: 0 },
            suspend: { type: "boolean" },
            managedBy: { enum: ["kubeflow.org/mpi-operator", "kueue.x-k8s.io/multikueue"] },
            schedulingPolicy: {
              type: "object",
              additionalProperties: false,
              properties: {
                minAvailable: { type: "integer", minimum: 0 },
                queue: { type: "string" },
                minResources: { type: "object" },
                priorityClass: { type: "string" },
                scheduleTimeoutSeconds: { type: "integer", minimum: 0 },
              },
            },
          },
        },
        mpiReplicaSpecs: {
          type: "object",
          additionalProperties: false,
          required: ["Launcher"],
          properties: { Launcher: replicaSpec(true), Worker: replicaSpec(false) },
        },
      },
    },
  },
};
const ajv = new Ajv({ allErrors: true, strict: true });
const validateMpiJob = ajv.compile(MPIJOB_SCHEMA);

// ---- helpers ----
const idOf = (o) => `${o?.kind ?? "?"}/${o?.metadata?.name ?? "?"}`;

// The pod templates of a workload, as [label, template] pairs.
function podTemplates(o) {
  const s = o.spec ?? {};
  switch (o.kind) {
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "ReplicaSet":
    case "Job":
      return s.template ? [["template", s.template]] : [];
    case "CronJob":
      return s.jobTemplate?.spec?.template ? [["jobTemplate.template", s.jobTemplate.spec.template]] : [];
    case "MPIJob":
      return Object.entries(s.mpiReplicaSpecs ?? {})
        .filter(([, r]) => r && r.template)
        .map(([role, r]) => [role, r.template]);
    default:
      return [];
  }
}

const allContainers = (tpl) => [
  ...(tpl.spec?.initContainers ?? []).map((c) => ["initContainer", c]),
  ...(tpl.spec?.containers ?? []).map((c) => ["container", c]),
];

const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => (labels ?? {})[k] === v);

// Loads a kubernetes-models class for apiVersion/kind, or null if there is none.
async function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Za-z0-9]+$/.test(kind)) return null;
  try {
    const m = await import(`kubernetes-models/${apiVersion}/${kind}`);
    return m[kind] ? { cls: m[kind], module: `kubernetes-models/${apiVersion}/${kind}`, iface: `I${kind}` } : null;
  } catch {
    return null;
  }
}

function schemaErrors(err) {
  const list = err?.errors ?? err?.details;
  if (Array.isArray(list) && list.length)
    return list.map((e) => `${e.instancePath || "/"} ${e.message}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ""}`);
  return [String(err?.message ?? err)];
}

// ---- one file ----
async function validateFile(file) {
  const failures = new Map(); // object id -> [messages]
  const fail = (id, msg) => {
    if (!failures.has(id)) failures.set(id, []);
    failures.get(id).push(msg);
  };
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    console.error(`validate-k8s: cannot read ${file}: ${e.message} (HINT: render it first with kubectl kustomize)`);
    process.exit(2);
  }
  const objs = [];
  for (const doc of parseAllDocuments(text, { uniqueKeys: true })) {
    if (doc.errors.length) {
      fail(`document ${objs.length + 1}`, `YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
      continue;
    }
    const o = doc.toJS();
    if (o == null) continue;
    objs.push(o);
  }
  if (objs.length === 0) fail(file, "no Kubernetes objects in the file (HINT: an empty render?)");

  // Layers 1 and 3.
  const tsDecls = []; // [id, interface module, interface name, value, message prefix]
  for (const o of objs) {
    const id = idOf(o);
    if (typeof o !== "object" || Array.isArray(o)) {
      fail(id, "a document is not a mapping");
      continue;
    }
    if (o.kind === "MPIJob") {
      if (!validateMpiJob(o))
        for (const e of validateMpiJob.errors)
          fail(id, `MPIJob schema: ${e.instancePath || "/"} ${e.message}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ""}`);
      const pts = await modelFor("v1", "PodTemplateSpec");
      for (const [role, tpl] of podTemplates(o)) {
        try {
          new pts.cls(tpl).validate();
        } catch (e) {
          for (const m of schemaErrors(e)) fail(id, `${role} template: ${m}`);
        }
        tsDecls.push([id, pts.module, pts.iface, tpl, `${role} template: `]);
        if (!(tpl.spec?.containers ?? []).length) fail(id, `${role} template has no containers`);
      }
      continue;
    }
    const model = await modelFor(o.apiVersion, o.kind);
    if (!model) {
      fail(id, `unknown apiVersion/kind '${o.apiVersion}' '${o.kind}' (HINT: a typo, or a CRD this validator does not know)`);
      continue;
    }
    try {
      new model.cls(o).validate();
    } catch (e) {
      for (const m of schemaErrors(e)) fail(id, `schema: ${m}`);
    }
    tsDecls.push([id, model.module, model.iface, o, ""]);
  }

  // Layer 4: cross-references.
  crossCheck(objs, fail);
  // Layer 2 runs once for all files (one tsc start-up), in main.
  return { file, objs, failures, tsDecls: tsDecls.map((d) => [...d, fail]) };
}

// Prints one file's findings and its closing line; returns true if it passed.
function report({ file, objs, failures }) {
  for (const [id, msgs] of failures) for (const m of msgs) console.log(`FAIL ${id}: ${m}`);
  // Objects with a failure, plus failures not tied to an object (YAML errors, tsc itself).
  const objIds = new Set(objs.map(idOf));
  const failedObjs = objs.filter((o) => failures.has(idOf(o))).length;
  const failed = failedObjs + [...failures.keys()].filter((k) => !objIds.has(k)).length;
  const passed = objs.length - failedObjs;
  console.log(`${file}: ${passed} passed, ${failed} failed`);
  return failed === 0;
}

// decls: [id, interface module, interface name, value, message prefix, fail function of its file].
function typeCheck(decls, failAll) {
  if (decls.length === 0) return;
  const dir = join(HERE, `.tscheck-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    const imports = new Map();
    for (const [, mod, iface] of decls) imports.set(`${mod}#${iface}`, [mod, iface]);
    const lines = [];
    const aliases = new Map();
    let k = 0;
    for (const [key, [mod, iface]] of imports) {
      const alias = `T${k++}`;
      aliases.set(key, alias);
      lines.push(`import type { ${iface} as ${alias} } from "${mod}";`);
    }
    const ranges = []; // [firstLine, lastLine, id]
    decls.forEach(([id, mod, iface, value, prefix, fail], i) => {
      const body = `export const d${i}: ${aliases.get(`${mod}#${iface}`)} = ${JSON.stringify(value, null, 2)};`;
      const first = lines.length + 1;
      lines.push(...body.split("\n"));
      ranges.push([first, lines.length, id, prefix, fail]);
    });
    writeFileSync(join(dir, "docs.ts"), lines.join("\n") + "\n");
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", skipLibCheck: true, types: [] },
        files: ["docs.ts"],
      }),
    );
    const tsc = join(HERE, "node_modules", "typescript", "bin", "tsc");
    const r = spawnSync(process.execPath, [tsc, "-p", join(dir, "tsconfig.json"), "--pretty", "false"], { encoding: "utf8" });
    if (r.error) {
      failAll("typescript", `cannot run tsc: ${r.error.message} (HINT: run deploy/validate/setup.sh)`);
      return;
    }
    const out = `${r.stdout}${r.stderr}`;
    let reported = 0;
    for (const m of out.matchAll(/docs\.ts\((\d+),(\d+)\): error (TS\d+): ([^\n]*)/g)) {
      const line = Number(m[1]);
      const hit = ranges.find(([a, b]) => line >= a && line <= b);
      if (hit) hit[4](hit[2], `${hit[3]}${m[3]} ${m[4]}`);
      else failAll("typescript", `${m[3]} ${m[4]}`);
      reported++;
    }
    if (r.status !== 0 && reported === 0) failAll("typescript", `tsc failed: ${out.trim().slice(0, 400)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- layer 4 ----
function crossCheck(objs, fail) {
  const byKind = (k) => objs.filter((o) => o.kind === k);
  const configMaps = new Map(byKind("ConfigMap").map((o) => [o.metadata?.name, o]));
  const secrets = new Set(byKind("Secret").map((o) => o.metadata?.name));
  const services = new Map(byKind("Service").map((o) => [o.metadata?.name, o]));
  const workloads = objs.filter((o) => podTemplates(o).length > 0);

  for (const w of workloads) {
    const id = idOf(w);
    // Selector against the template labels (StatefulSet, Deployment, ...).
    const sel = w.spec?.selector?.matchLabels;
    if (sel && !matches(sel, w.spec?.template?.metadata?.labels))
      fail(id, `selector ${JSON.stringify(sel)} does not match the template labels`);
    // The governing Service of a StatefulSet: present, headless, selecting these pods.
    if (w.kind === "StatefulSet") {
      const svc = services.get(w.spec?.serviceName);
      if (!w.spec?.serviceName) fail(id, "no spec.serviceName (HINT: older API servers require it; name the headless Service)");
      else if (!svc) fail(id, `serviceName '${w.spec.serviceName}' names no Service in this render`);
      else {
        if (svc.spec?.clusterIP !== "None") fail(id, `governing Service '${svc.metadata.name}' is not headless (clusterIP: None)`);
        if (!matches(svc.spec?.selector, w.spec?.template?.metadata?.labels))
          fail(id, `governing Service '${svc.metadata.name}' does not select this StatefulSet's pods`);
      }
    }
    for (const [role, tpl] of podTemplates(w)) {
      const where = w.kind === "MPIJob" ? `${role} ` : "";
      const ps = tpl.spec ?? {};
      if (ps.securityContext?.runAsNonRoot !== true) fail(id, `${where}pod securityContext.runAsNonRoot is not true`);
      const volumes = new Set((ps.volumes ?? []).map((v) => v.name));
      for (const t of w.spec?.volumeClaimTemplates ?? []) volumes.add(t.metadata?.name);
      for (const v of ps.volumes ?? []) {
        if (v.configMap && !configMaps.has(v.configMap.name) && !v.configMap.optional)
          fail(id, `${where}volume '${v.name}' uses ConfigMap '${v.configMap.name}', which is not in this render`);
        if (v.secret && !secrets.has(v.secret.secretName) && !externalSecrets.has(v.secret.secretName) && !v.secret.optional)
          fail(id, `${where}volume '${v.name}' uses Secret '${v.secret.secretName}', which is not in this render`);
        if (v.persistentVolumeClaim && !objs.some((o) => o.kind === "PersistentVolumeClaim" && o.metadata?.name === v.persistentVolumeClaim.claimName))
          fail(id, `${where}volume '${v.name}' uses PVC '${v.persistentVolumeClaim.claimName}', which is not in this render`);
      }
      for (const [ckind, c] of allContainers(tpl)) {
        const cid = `${where}${ckind} '${c.name}'`;
        // Image: the placeholder must be replaced by the overlay, and carry a tag or digest.
        if (c.image === PLACEHOLDER_IMAGE || /(^|\/)ibrl-image(:|$)/.test(c.image ?? ""))
          fail(id, `${cid}: image placeholder '${c.image}' not replaced (HINT: images: in the overlay; MPIJob needs the component's kustomizeconfig.yaml)`);
        else if (!/(:[^/:]+|@sha256:[0-9a-f]{64})$/.test(c.image ?? "")) fail(id, `${cid}: image '${c.image}' has no tag`);
        // Resources everywhere: CPU and memory requests, a memory limit.
        const r = c.resources ?? {};
        if (!r.requests?.cpu || !r.requests?.memory) fail(id, `${cid}: no CPU and memory requests`);
        if (!r.limits?.memory) fail(id, `${cid}: no memory limit`);
        // Environment: what $(VAR) and shell $VAR may use.
        const env = new Set((c.env ?? []).map((e) => e.name));
        for (const e of c.env ?? []) {
          const cmk = e.valueFrom?.configMapKeyRef;
          if (cmk) {
            const cm = configMaps.get(cmk.name);
            if (!cm && !cmk.optional) fail(id, `${cid}: env ${e.name} uses ConfigMap '${cmk.name}', which is not in this render`);
            else if (cm && !(cmk.key in (cm.data ?? {})) && !cmk.optional) fail(id, `${cid}: env ${e.name}: ConfigMap '${cmk.name}' has no key '${cmk.key}'`);
          }
          const sk = e.valueFrom?.secretKeyRef;
          if (sk && !secrets.has(sk.name) && !externalSecrets.has(sk.name) && !sk.optional)
            fail(id, `${cid}: env ${e.name} uses Secret '${sk.name}', which is not in this render (HINT: --external-secret NAME if it is created by hand)`);
        }
        for (const ef of c.envFrom ?? []) {
          if (ef.configMapRef) {
            const cm = configMaps.get(ef.configMapRef.name);
            if (!cm && !ef.configMapRef.optional) fail(id, `${cid}: envFrom ConfigMap '${ef.configMapRef.name}' is not in this render`);
            for (const key of Object.keys(cm?.data ?? {})) env.add(`${ef.prefix ?? ""}${key}`);
          }
          if (ef.secretRef && !secrets.has(ef.secretRef.name) && !externalSecrets.has(ef.secretRef.name) && !ef.secretRef.optional)
            fail(id, `${cid}: envFrom Secret '${ef.secretRef.name}' is not in this render`);
        }
        const argv = [...(c.command ?? []), ...(c.args ?? [])].map(String);
        for (const a of argv)
          for (const m of a.matchAll(/(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g))
            if (!env.has(m[1])) fail(id, `${cid}: $(${m[1]}) is not defined in the container's env or envFrom (the kubelet would pass it literally)`);
        // Shell scripts: upper-case $VAR / ${VAR} must come from the environment.
        const shell = /(^|\/)(ba)?sh$/.test(argv[0] ?? "") && argv.includes("-c");
        if (shell) {
          const script = argv[argv.indexOf("-c") + 1] ?? "";
          const assigned = new Set([...script.matchAll(/(?:^|[\s;])([A-Z_][A-Z0-9_]*)=/g)].map((m) => m[1]));
          for (const m of script.matchAll(/\$\{?([A-Z_][A-Z0-9_]*)/g))
            if (!env.has(m[1]) && !assigned.has(m[1]) && !["HOME", "PATH", "HOSTNAME"].includes(m[1]))
              fail(id, `${cid}: the script uses $${m[1]}, which is not in the container's environment`);
          const words = script.replace(/\\\n/g, " ").split(/\s+/);
          for (let i = 0; i < words.length - 1; i++)
            if (words[i] === "-x" && !words[i + 1].includes("=") && !env.has(words[i + 1]) && !assigned.has(words[i + 1]) &&
                !["PATH", "LD_LIBRARY_PATH"].includes(words[i + 1]))
              fail(id, `${cid}: mpirun -x ${words[i + 1]} exports a variable the container does not set`);
        }
        // mpirun -x NAME exports must name a variable the launcher has.
        const mpi = argv.findIndex((a) => /(^|\/)(mpirun|mpiexec)$/.test(a));
        if (mpi >= 0)
          for (let i = mpi + 1; i < argv.length - 1; i++)
            if (argv[i] === "-x" && !argv[i + 1].includes("=") && !env.has(argv[i + 1]) && argv[i + 1] !== "LD_LIBRARY_PATH" && argv[i + 1] !== "PATH")
              fail(id, `${cid}: mpirun -x ${argv[i + 1]} exports a variable the container does not set`);
        // Probes: gRPC ports must be container ports (kubelet dials the pod IP on that port).
        const ports = new Set((c.ports ?? []).map((p) => p.containerPort));
        for (const pn of ["readinessProbe", "livenessProbe", "startupProbe"]) {
          const g = c[pn]?.grpc;
          if (g && !ports.has(g.port)) fail(id, `${cid}: ${pn} gRPC port ${g.port} is not a containerPort`);
        }
        for (const vm of c.volumeMounts ?? [])
          if (!volumes.has(vm.name)) fail(id, `${cid}: volumeMount '${vm.name}' has no volume or claim template`);
      }
    }
  }

  // PodDisruptionBudgets must select some workload's pods.
  for (const p of byKind("PodDisruptionBudget")) {
    const sel = p.spec?.selector?.matchLabels ?? {};
    const hit = workloads.some((w) => podTemplates(w).some(([, t]) => matches(sel, t.metadata?.labels)));
    if (!hit) fail(idOf(p), `selector ${JSON.stringify(sel)} matches no workload in this render`);
  }
  // Headless replay Service: its port must be the replay container's.
  countsCheck(objs, configMaps, fail);
}

// The counts of the ibrl-endpoints ConfigMap against the replicas, and the shard addresses.
function countsCheck(objs, configMaps, fail) {
  const ep = [...configMaps.values()].find((c) => /^ibrl-endpoints(-[a-z0-9]+)?$/.test(c.metadata?.name ?? ""));
  const sts = (n) => objs.find((o) => o.kind === "StatefulSet" && o.metadata?.name === n);
  const replay = sts("replay");
  const actor = sts("actor");
  if (!ep) {
    if (replay || actor) fail("ConfigMap/ibrl-endpoints", "missing from this render (it holds the shard and actor counts)");
    return;
  }
  const id = idOf(ep);
  const d = ep.data ?? {};
  const int = (k) => (/^[0-9]+$/.test(d[k] ?? "") ? Number(d[k]) : NaN);
  if (replay) {
    const shards = int("REPLAY_SHARDS");
    const replicas = replay.spec?.replicas ?? 1;
    if (shards !== replicas) fail(id, `REPLAY_SHARDS=${d.REPLAY_SHARDS} but StatefulSet replay has replicas ${replicas}`);
    const svcName = d.REPLAY_SERVICE;
    const port = int("REPLAY_PORT");
    if (svcName !== replay.spec?.serviceName) fail(id, `REPLAY_SERVICE=${svcName} but StatefulSet replay is governed by '${replay.spec?.serviceName}'`);
    const svc = objs.find((o) => o.kind === "Service" && o.metadata?.name === svcName);
    if (svc && !(svc.spec?.ports ?? []).some((p) => p.port === port)) fail(id, `REPLAY_PORT=${d.REPLAY_PORT} is not a port of Service '${svcName}'`);
    const cports = (replay.spec?.template?.spec?.containers ?? []).flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
    if (!cports.includes(port)) fail(id, `REPLAY_PORT=${d.REPLAY_PORT} is not a containerPort of StatefulSet replay`);
    const list = (d.REPLAY_LIST ?? "").split(",").filter(Boolean);
    if (list.length !== replicas) fail(id, `REPLAY_LIST has ${list.length} shards but StatefulSet replay has replicas ${replicas}`);
    list.forEach((a, i) => {
      const want = `${svcName}-${i}.${svcName}:${port}`;
      if (a !== want) fail(id, `REPLAY_LIST entry ${i} is '${a}', expected '${want}' (shard i is pod replay-i)`);
    });
    if (d.PARAMS_ENDPOINT && !list.includes(d.PARAMS_ENDPOINT)) fail(id, `PARAMS_ENDPOINT=${d.PARAMS_ENDPOINT} is not one of the replay shards`);
  }
  if (actor) {
    const n = int("NUM_ACTORS");
    const replicas = actor.spec?.replicas ?? 1;
    if (n !== replicas) fail(id, `NUM_ACTORS=${d.NUM_ACTORS} but StatefulSet actor has replicas ${replicas}`);
  }
  const mpijob = objs.find((o) => o.kind === "MPIJob");
  if (mpijob) {
    const w = mpijob.spec?.mpiReplicaSpecs?.Worker?.replicas ?? 0;
    const slots = mpijob.spec?.slotsPerWorker ?? 1;
    if (int("LEARNER_RANKS") !== w * slots)
      fail(id, `LEARNER_RANKS=${d.LEARNER_RANKS} but MPIJob ${mpijob.metadata?.name} has ${w} workers x ${slots} slots = ${w * slots} ranks`);
  }
}

const results = [];
for (const f of files) results.push(await validateFile(f));
// An error tsc cannot place (or tsc not running) fails every file: none was fully checked.
typeCheck(results.flatMap((r) => r.tsDecls), (id, msg) => {
  for (const r of results) {
    if (!r.failures.has(id)) r.failures.set(id, []);
    r.failures.get(id).push(msg);
  }
});
let ok = true;
for (const r of results) ok = report(r) && ok;
process.exit(ok ? 0 : 1);
