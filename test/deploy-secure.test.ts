// The secure deploy variants checked without Docker or kubectl: deploy/compose.secure.yaml and the
// deploy/k8s-secure kustomization give every ZeroMQ role its CURVE keys and every NATS user the token,
// patch only objects and containers deploy/ has, name secrets consistently, and read key files that
// `imdb-train keys` really writes and git ignores.
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
          const need = role(orig.args) === "coordinator" ? ["server.key", "client.pub"] : ["server.pub", "client.pub", "client.key"];
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
