// The secure deploy variants checked without Docker or kubectl: deploy/compose.secure.yaml and the
// deploy/k8s-secure kustomization give every ZeroMQ role its CURVE keys and every NATS user the token,
// patch only objects and containers deploy/ has, name secrets consistently, and read key files that
// `imdb-train keys` really writes and git ignores; deploy/k8s-shards adds coordinator shards on top of it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DEPLOY, REPO, yamlDocs, helpOf, flagsIn } from "./helpers/deploy.js";
import { parseYaml } from "../src/metrics/yaml.js";
import { runCli } from "./helpers/cli.js";
import { tempDir, cleanup } from "./helpers/fixture.js";
import { readdirSync } from "node:fs";

const compose = parseYaml(readFileSync(join(DEPLOY, "compose.yaml"), "utf8"), "deploy/compose.yaml") as any;
const secure = parseYaml(readFileSync(join(DEPLOY, "compose.secure.yaml"), "utf8"), "deploy/compose.secure.yaml") as any;
const OUR_IMAGES = new Set(["imdb-train:latest", "imdb-train-gpu:latest"]);
const role = (argv: string[]) => argv[0]!;
const usesNats = (argv: string[]) => argv.includes("--nats") || argv.includes("--publish");

test("compose.secure.yaml: CURVE keys for every coordinator and worker, the NATS token for every NATS user and the server", async () => {
  for (const name of Object.keys(secure.services)) if (name !== "keys") assert.ok(name in compose.services, `${name} is not a compose.yaml service`);
  const keys = secure.services.keys;
  assert.equal(keys.image, "imdb-train:latest");
  const help = await helpOf("keys");
  for (const a of keys.command as string[]) if (a.startsWith("--")) assert.ok(flagsIn(help).has(a), `keys has no ${a}`);
  assert.ok((keys.command as string[]).includes("--if-missing"), "the one-shot keys service must not fail on the second `up`");
  assert.ok("keys" in secure.volumes);
  for (const [name, s] of Object.entries<any>(compose.services)) {
    if (!OUR_IMAGES.has(s.image)) continue;
    const argv = s.command as string[];
    const over = secure.services[name];
    if (role(argv) === "coordinator" || role(argv) === "worker") {
      assert.equal(over?.environment?.IMDB_TRAIN_CURVE_KEYS, "/keys", `${name}: IMDB_TRAIN_CURVE_KEYS`);
      assert.ok((over.volumes as string[]).includes("keys:/keys:ro"), `${name}: keys volume`);
      assert.equal(over.depends_on?.keys?.condition, "service_completed_successfully", `${name} waits for the keys`);
    }
    if (usesNats(argv)) assert.match(String(over?.environment?.IMDB_TRAIN_NATS_TOKEN), /^\$\{NATS_TOKEN:\?/, `${name}: token`);
    // the merged environment keeps what compose.yaml sets
    for (const [k, v] of Object.entries<any>(s.environment ?? {})) assert.equal(over?.environment?.[k] ?? v, v, `${name}: ${k}`);
  }
  const natsArgs = secure.services.nats.command as string[];
  assert.deepEqual(natsArgs.slice(0, -2), compose.services.nats.command, "nats keeps its own flags");
  assert.equal(natsArgs[natsArgs.length - 2], "--auth");
  const dockerfile = readFileSync(join(DEPLOY, "docker", "Dockerfile"), "utf8");
  assert.match(dockerfile, /chown node:node [^\n]*\/keys/, "the image owns /keys so a fresh named volume is writable by `node`");
});

test("k8s-secure: patches hit objects of deploy/k8s, secrets match their references, key files are what `keys` writes and git ignores", async () => {
  const base = yamlDocs("deploy/k8s").filter((d) => d.doc.kind !== "Kustomization").map((d) => d.doc);
  const kust = parseYaml(readFileSync(join(DEPLOY, "k8s-secure", "kustomization.yaml"), "utf8"), "kustomization") as any;
  assert.deepEqual(kust.resources, ["../k8s"]);
  const patches = yamlDocs("deploy/k8s-secure").filter((d) => d.file.endsWith("secure-patches.yaml")).map((d) => d.doc);
  assert.deepEqual(kust.patches.map((p: any) => p.path), ["secure-patches.yaml"]);
  const secrets = new Map<string, Set<string>>();
  const sources = new Set<string>();
  for (const g of kust.secretGenerator) {
    secrets.set(g.name, new Set((g.files as string[]).map((f) => f.split("=")[0]!)));
    for (const f of g.files as string[]) sources.add(f.split("=")[1]!);
  }
  const used = new Set<string>();
  for (const p of patches) {
    const target = base.find((d) => d.kind === p.kind && d.metadata.name === p.metadata.name);
    assert.ok(target, `${p.kind}/${p.metadata.name} is not in deploy/k8s`);
    const containers = new Map<string, any>(target.spec.template.spec.containers.map((c: any) => [c.name, c]));
    for (const c of p.spec.template.spec.containers) {
      const orig = containers.get(c.name);
      assert.ok(orig, `${p.metadata.name}: no container ${c.name}`);
      const argv: string[] = c.args ?? orig.args;
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) { assert.ok(secrets.get(ref.name)?.has(ref.key), `${p.metadata.name}: secret ${ref.name}/${ref.key}`); used.add(ref.name); }
      }
      const env = new Map((c.env ?? []).map((e: any) => [e.name, e]));
      if (orig.image && OUR_IMAGES.has(orig.image)) {
        if (usesNats(orig.args)) assert.ok(env.has("IMDB_TRAIN_NATS_TOKEN"), `${p.metadata.name}: NATS token`);
        if (role(orig.args) === "coordinator" || role(orig.args) === "worker") {
          assert.equal((env.get("IMDB_TRAIN_CURVE_KEYS") as any)?.value, "/keys", `${p.metadata.name}: IMDB_TRAIN_CURVE_KEYS`);
          const mount = (c.volumeMounts ?? []).find((m: any) => m.mountPath === "/keys");
          const vol = (p.spec.template.spec.volumes ?? []).find((v: any) => v.name === mount?.name);
          assert.ok(vol?.secret, `${p.metadata.name}: /keys from a secret`);
          used.add(vol.secret.secretName);
          const files = secrets.get(vol.secret.secretName)!;
          const need = role(orig.args) === "coordinator" ? ["server.key", "server.pub", "client.pub"] : ["server.pub", "client.pub", "client.key"];
          assert.deepEqual([...files].sort(), need.sort(), `${p.metadata.name}: key files`);
          assert.equal(p.spec.template.spec.securityContext?.fsGroup, 1000, "the image's node user reads the 0440 secret");
        }
      } else {
        assert.ok(argv.includes("--auth") && argv.includes("$(NATS_TOKEN)"), "nats-server requires the token");
      }
    }
  }
  assert.deepEqual([...used].sort(), [...secrets.keys()].sort(), "every generated secret is used");
  // the files the generator reads are exactly what `imdb-train keys` writes (plus the token), and git ignores them
  const dir = tempDir("imdb-k8skeys-");
  try {
    const r = await runCli(["keys", "--out", join(dir, "keys")]);
    assert.equal(r.code, 0, r.stderr);
    const written = new Set(readdirSync(join(dir, "keys")).map((f) => `keys/${f}`));
    for (const s of sources) if (s !== "keys/nats-token") assert.ok(written.has(s), `${s} is not written by \`imdb-train keys\``);
  } finally {
    cleanup(dir);
  }
  const ignore = readFileSync(join(REPO, ".gitignore"), "utf8").split("\n");
  assert.ok(ignore.includes("deploy/k8s-secure/keys/") && ignore.includes("deploy/keys/"), ".gitignore keeps key material out of git");
});

test("k8s-shards: the coordinator claims as many shards as the Deployment runs, and each shard has the flags, keys and token it needs", async () => {
  const kust = parseYaml(readFileSync(join(DEPLOY, "k8s-shards", "kustomization.yaml"), "utf8"), "kustomization") as any;
  assert.deepEqual(kust.resources, ["../k8s-secure", "shards.yaml"]);
  const secure = parseYaml(readFileSync(join(DEPLOY, "k8s-secure", "kustomization.yaml"), "utf8"), "kustomization") as any;
  const secrets = new Map<string, string[]>(secure.secretGenerator.map((g: any) => [g.name, (g.files as string[]).map((f) => f.split("=")[0]!)]));
  // the JSON patch appends to the coordinator's command line, as kustomize would apply it
  assert.deepEqual(kust.patches.map((p: any) => p.target), [{ group: "batch", version: "v1", kind: "Job", name: "imdb-train-coordinator" }]);
  const ops = yamlDocs("deploy/k8s-shards").find((d) => d.file.endsWith(kust.patches[0].path))!.doc as { op: string; path: string; value: string }[];
  const coordinator = yamlDocs("deploy/k8s").map((d) => d.doc).find((d) => d.kind === "Job" && d.metadata.name === "imdb-train-coordinator");
  const args: string[] = [...coordinator.spec.template.spec.containers[0].args];
  for (const op of ops) {
    assert.equal(op.op, "add");
    assert.equal(op.path, "/spec/template/spec/containers/0/args/-");
    args.push(op.value);
  }
  const coordinatorHelp = flagsIn(await helpOf("coordinator"));
  for (const a of args) if (a.startsWith("--")) assert.ok(coordinatorHelp.has(a), `coordinator has no ${a}`);
  assert.ok(args.includes("--remote-shards"));
  const k = Number(args[args.indexOf("--coordinator-shards") + 1]);
  const shards = yamlDocs("deploy/k8s-shards").map((d) => d.doc).find((d) => d?.kind === "Deployment");
  assert.equal(shards.spec.replicas, k - 1, "k − 1 shards for --coordinator-shards k");
  const pod = shards.spec.template;
  for (const [key, v] of Object.entries<string>(shards.spec.selector.matchLabels)) assert.equal(pod.metadata.labels[key], v);
  const [c] = pod.spec.containers;
  assert.equal(c.image, "imdb-train:latest");
  assert.equal(role(c.args), "coordinator-shard");
  const shardHelp = flagsIn(await helpOf("coordinator-shard"));
  for (const a of c.args as string[]) if (a.startsWith("--")) assert.ok(shardHelp.has(a), `coordinator-shard has no ${a}`);
  // announced on the NATS server the coordinator claims from, with the token; the coordinator's key pair
  assert.equal(c.args[c.args.indexOf("--nats") + 1], args[args.indexOf("--nats") + 1]);
  const env = new Map((c.env as any[]).map((e) => [e.name, e]));
  assert.equal(env.get("IMDB_TRAIN_CURVE_KEYS")?.value, "/keys");
  assert.equal(env.has("IMDB_TRAIN_INSECURE"), false);
  const token = env.get("IMDB_TRAIN_NATS_TOKEN")?.valueFrom?.secretKeyRef;
  assert.ok(secrets.get(token?.name)?.includes(token?.key), "the NATS token from k8s-secure's secret");
  const mount = (c.volumeMounts as any[]).find((m) => m.mountPath === "/keys");
  const vol = (pod.spec.volumes as any[]).find((v) => v.name === mount?.name);
  assert.deepEqual([...(secrets.get(vol?.secret?.secretName) ?? [])].sort(), ["client.pub", "server.key", "server.pub"], "a shard holds the coordinator's key pair and admits the workers' key");
  assert.equal(pod.spec.securityContext?.fsGroup, 1000, "the image's node user reads the 0440 secret");
  // the coordinator with --remote-shards checks shards with its own public key: k8s-secure mounts it
  const patches = yamlDocs("deploy/k8s-secure").filter((d) => d.file.endsWith("secure-patches.yaml")).map((d) => d.doc);
  const coordVol = patches.find((p) => p.metadata.name === "imdb-train-coordinator").spec.template.spec.volumes.find((v: any) => v.name === "curve-keys");
  assert.equal(coordVol.secret.secretName, vol.secret.secretName);
});
