// deploy/ checked without Docker or kubectl: files parse, Kubernetes objects have what they need and
// refer to each other consistently, every imdb-train invocation names a subcommand and flags the real
// CLI has, ports agree across code, manifests and scrape configs, promtool accepts both Prometheus configs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEPLOY, REPO, yamlDocs, flagValue, helpOf, flagsIn, type Invocation, type YamlDoc } from "./helpers/deploy.js";
import { parseYaml } from "../src/metrics/yaml.js";
import { DEFAULT_METRICS_PORT, type Role } from "../src/metrics/names.js";
import { buildDashboard } from "../src/metrics/dashboard.js";
import { AbortedError, InputError, ProtocolError, UsageError } from "../src/errors.js";

const OUR_IMAGES: Record<string, string> = {
  "imdb-train:latest": "deploy/docker/Dockerfile",
  "imdb-train-gpu:latest": "deploy/docker/Dockerfile.gpu",
};
const K8S_WORKLOADS = new Set(["Deployment", "StatefulSet", "Job", "DaemonSet"]);

const compose = parseYaml(readFileSync(join(DEPLOY, "compose.yaml"), "utf8"), "deploy/compose.yaml") as any;
const k8s: YamlDoc[] = yamlDocs("deploy/k8s").filter((d) => d.doc.kind !== "Kustomization");
const podSpec = (d: any) => d.spec?.template?.spec;

function k8sInvocations(): Invocation[] {
  return k8s.filter((d) => K8S_WORKLOADS.has(d.doc.kind)).flatMap((d) =>
    (podSpec(d.doc).containers as any[]).filter((c) => c.image in OUR_IMAGES)
      .map((c) => ({ where: `${d.file} ${d.doc.kind}/${d.doc.metadata.name}`, image: c.image, argv: c.args as string[] })));
}

function composeInvocations(): Invocation[] {
  return Object.entries<any>(compose.services).filter(([, s]) => s.image in OUR_IMAGES)
    .map(([name, s]) => ({ where: `compose ${name}`, image: s.image, argv: (s.command as string[]).map((a) => a.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, "$1")) }));
}

test("every YAML file parses; Kubernetes objects have apiVersion, kind and a name; kustomization lists them all", () => {
  const docs = yamlDocs("deploy");
  assert.ok(docs.length >= 20, `${docs.length} documents`);
  for (const { file, doc } of k8s) {
    assert.ok(doc.apiVersion && doc.kind && doc.metadata?.name, `${file}: ${JSON.stringify(doc).slice(0, 80)}`);
  }
  const kust = yamlDocs("deploy/k8s").find((d) => d.doc.kind === "Kustomization")!.doc;
  const files = new Set(k8s.map((d) => d.file.replace("deploy/k8s/", "")));
  assert.deepEqual(new Set(kust.resources), files);
  const names = k8s.map((d) => `${d.doc.kind}/${d.doc.metadata.name}`);
  assert.equal(new Set(names).size, names.length, "duplicate objects");
});

test("workloads: selectors match their pods, volumes and ConfigMaps they use exist, Services reach a port", () => {
  const byKind = (kind: string) => k8s.filter((d) => d.doc.kind === kind).map((d) => d.doc);
  const pvcs = new Set(byKind("PersistentVolumeClaim").map((d) => d.metadata.name));
  const configMaps = new Map(byKind("ConfigMap").map((d) => [d.metadata.name, d]));
  const pods: { labels: Record<string, string>; ports: number[] }[] = [];
  for (const d of k8s.filter((x) => K8S_WORKLOADS.has(x.doc.kind)).map((x) => x.doc)) {
    const labels = d.spec.template.metadata.labels ?? {};
    if (d.kind !== "Job") {
      for (const [k, v] of Object.entries(d.spec.selector.matchLabels)) assert.equal(labels[k], v, `${d.metadata.name}: selector ${k}`);
    }
    const spec = podSpec(d);
    const claimTemplates = new Set((d.spec.volumeClaimTemplates ?? []).map((t: any) => t.metadata.name));
    const volumes = new Set((spec.volumes ?? []).map((v: any) => v.name));
    for (const v of spec.volumes ?? []) {
      if (v.persistentVolumeClaim) assert.ok(pvcs.has(v.persistentVolumeClaim.claimName), `${d.metadata.name}: PVC ${v.persistentVolumeClaim.claimName}`);
      if (v.configMap) {
        const cm = configMaps.get(v.configMap.name);
        assert.ok(cm, `${d.metadata.name}: ConfigMap ${v.configMap.name}`);
        for (const item of v.configMap.items ?? []) assert.ok(item.key in cm.data, `${v.configMap.name} has no key ${item.key}`);
      }
    }
    for (const c of spec.containers) {
      assert.ok(c.name && c.image, `${d.metadata.name}: container needs name and image`);
      for (const m of c.volumeMounts ?? []) assert.ok(volumes.has(m.name) || claimTemplates.has(m.name), `${d.metadata.name}: mount ${m.name}`);
    }
    pods.push({ labels, ports: spec.containers.flatMap((c: any) => (c.ports ?? []).map((p: any) => p.containerPort)) });
  }
  for (const svc of byKind("Service")) {
    const pod = pods.find((p) => Object.entries(svc.spec.selector).every(([k, v]) => p.labels[k] === v));
    assert.ok(pod, `Service ${svc.metadata.name} selects no pod`);
    for (const port of svc.spec.ports) assert.ok(pod.ports.includes(port.targetPort), `Service ${svc.metadata.name}: targetPort ${port.targetPort}`);
  }
});

test("workers request one GPU each and run the GPU image; the coordinator has a Service and a checkpoint volume", () => {
  const worker = k8s.find((d) => d.doc.kind === "Job" && d.doc.metadata.name === "imdb-train-worker")!.doc;
  const wc = podSpec(worker).containers[0];
  assert.equal(String(wc.resources.limits["nvidia.com/gpu"]), "1");
  assert.equal(wc.image, "imdb-train-gpu:latest");
  assert.equal(flagValue(wc.args, "backend"), "webgpu");
  const coord = k8s.find((d) => d.doc.kind === "Job" && d.doc.metadata.name === "imdb-train-coordinator")!.doc;
  const cc = podSpec(coord).containers[0];
  const out = flagValue(cc.args, "out")!;
  const mount = cc.volumeMounts.find((m: any) => out.startsWith(m.mountPath));
  const vol = podSpec(coord).volumes.find((v: any) => v.name === mount.name);
  assert.equal(vol.persistentVolumeClaim.claimName, "imdb-train-checkpoints", "--out is on the checkpoint PVC");
  assert.equal(coord.spec.parallelism ?? 1, 1, "one coordinator");
  assert.ok(k8s.some((d) => d.doc.kind === "Service" && d.doc.metadata.name === "coordinator"));
});

test("images: ours are built by Dockerfiles in this repo, third-party ones are pinned, NATS is 2.11 or newer", () => {
  const images = [
    ...k8s.filter((d) => K8S_WORKLOADS.has(d.doc.kind)).flatMap((d) => podSpec(d.doc).containers.map((c: any) => c.image as string)),
    ...Object.values<any>(compose.services).map((s) => s.image as string),
  ];
  for (const image of images) {
    if (image in OUR_IMAGES) {
      assert.ok(existsSync(join(REPO, OUR_IMAGES[image]!)), OUR_IMAGES[image]);
      continue;
    }
    const tag = image.split(":")[1];
    assert.ok(tag && tag !== "latest", `${image} is not pinned`);
  }
  for (const image of images.filter((i) => i.startsWith("nats:"))) {
    const [maj, min] = image.slice(5).split(".").map(Number);
    assert.ok(maj! > 2 || (maj === 2 && min! >= 11), `${image}: JetStream needs nats-server ≥ 2.11`);
  }
  // Grafana loads dashboards of its own schema version or older: 42 needs Grafana 12.2.
  const schema = (buildDashboard() as { schemaVersion: number }).schemaVersion;
  for (const image of images.filter((i) => i.startsWith("grafana/grafana:"))) {
    const [maj, min] = image.split(":")[1]!.split(".").map(Number);
    if (schema >= 42) assert.ok(maj! > 12 || (maj === 12 && min! >= 2), `${image} is older than the dashboard's schemaVersion ${schema}`);
  }
  for (const [name, s] of Object.entries<any>(compose.services)) {
    if (s.image in OUR_IMAGES) assert.equal(join(s.build.context, s.build.dockerfile).replace(/^\.\.\//, ""), OUR_IMAGES[s.image], `compose ${name} build`);
  }
});

test("Dockerfiles copy files that exist and run bin/imdb-train.js; the GPU image has Vulkan and the NVIDIA graphics capability", () => {
  for (const path of Object.values(OUR_IMAGES)) {
    const text = readFileSync(join(REPO, path), "utf8");
    for (const m of text.matchAll(/^COPY (?!--from)(.+)$/gm)) {
      const parts = m[1]!.trim().split(/\s+/);
      for (const src of parts.slice(0, -1)) assert.ok(existsSync(join(REPO, src)), `${path}: COPY ${src}`);
    }
    assert.match(text, /^ENTRYPOINT \["node", "\/app\/bin\/imdb-train\.js"\]$/m);
    assert.ok(existsSync(join(REPO, "bin/imdb-train.js")));
    for (const m of text.matchAll(/^FROM (\S+)/gm)) assert.match(m[1]!, /:[0-9]/, `${path}: base image ${m[1]} pinned`);
  }
  const gpu = readFileSync(join(REPO, OUR_IMAGES["imdb-train-gpu:latest"]!), "utf8");
  assert.match(gpu, /libvulkan1/);
  assert.match(gpu, /NVIDIA_DRIVER_CAPABILITIES=[a-z,]*graphics/);
  assert.match(gpu, /icd\.d\/nvidia_icd\.json/);
});

test("compose: workers scale (no fixed name or host port), dependencies, mounts and profiles exist", () => {
  const s = compose.services;
  for (const name of ["worker", "worker-gpu"]) {
    assert.equal(s[name].container_name, undefined, `${name} must not pin container_name`);
    assert.equal(s[name].ports, undefined, `${name} must not publish host ports (they would clash when scaled)`);
  }
  assert.equal(s["worker-gpu"].deploy.resources.reservations.devices[0].driver, "nvidia");
  for (const [name, svc] of Object.entries<any>(s)) {
    for (const dep of Object.keys(svc.depends_on ?? {})) assert.ok(dep in s, `${name} depends on unknown ${dep}`);
    for (const v of svc.volumes ?? []) {
      const src = String(v).split(":")[0]!;
      if (src.startsWith("./")) assert.ok(existsSync(join(DEPLOY, src)), `${name}: ${src}`);
      else if (!src.startsWith("$")) assert.ok(src in compose.volumes, `${name}: volume ${src}`);
    }
  }
  assert.equal(s.coordinator.depends_on.ingest.condition, "service_completed_successfully");
});

test("every imdb-train invocation uses a subcommand and flags that the real CLI's --help lists", { timeout: 120_000 }, async () => {
  const all = [...composeInvocations(), ...k8sInvocations()];
  assert.ok(all.length >= 6, `${all.length} invocations`);
  const problems: string[] = [];
  for (const inv of all) {
    const sub = inv.argv[0]!;
    const help = await helpOf(sub);
    if (!help) { problems.push(`${inv.where}: \`imdb-train ${sub} --help\` fails (no such command yet?)`); continue; }
    const known = flagsIn(help);
    for (const a of inv.argv.slice(1)) if (a.startsWith("--") && !known.has(a)) problems.push(`${inv.where}: ${sub} has no ${a}`);
  }
  assert.deepEqual(problems, []);
});

test("ports agree: --metrics-port, containerPort, scrape annotations and configs, ZeroMQ and NATS Services", () => {
  const roleOf = (argv: string[]): Role => (argv[0] === "ingest" ? "ingest" : argv[0] === "coordinator" ? "coordinator" : "worker");
  for (const inv of [...composeInvocations(), ...k8sInvocations()]) {
    const port = flagValue(inv.argv, "metrics-port");
    // long-running roles must serve /metrics; the one-shot ingest and keys need not
    if (inv.argv[0] !== "ingest" && inv.argv[0] !== "keys") assert.ok(port, `${inv.where}: no --metrics-port`);
    if (port) assert.equal(Number(port), DEFAULT_METRICS_PORT[roleOf(inv.argv)], `${inv.where}: --metrics-port`);
    const nats = flagValue(inv.argv, "nats") ?? flagValue(inv.argv, "publish");
    if (nats) assert.equal(nats, "nats://nats:4222", `${inv.where}: NATS URL`);
  }
  for (const d of k8s.filter((x) => K8S_WORKLOADS.has(x.doc.kind) && x.doc.spec.template.metadata.annotations?.["prometheus.io/scrape"])) {
    const c = podSpec(d.doc).containers[0];
    const port = Number(flagValue(c.args, "metrics-port"));
    assert.equal(Number(d.doc.spec.template.metadata.annotations["prometheus.io/port"]), port, `${d.doc.metadata.name}: annotation`);
    assert.ok(c.ports.some((p: any) => p.containerPort === port && p.name === "metrics"), `${d.doc.metadata.name}: containerPort`);
  }
  const svc = (name: string) => k8s.find((d) => d.doc.kind === "Service" && d.doc.metadata.name === name)!.doc;
  const coordArgs = podSpec(k8s.find((d) => d.doc.metadata.name === "imdb-train-coordinator" && d.doc.kind === "Job")!.doc).containers[0].args;
  const zmqPort = Number(flagValue(coordArgs, "bind")!.split(":").pop());
  assert.ok(svc("coordinator").spec.ports.some((p: any) => p.port === zmqPort));
  assert.ok(svc("nats").spec.ports.some((p: any) => p.port === 4222));
  // compose scrape config: the ports the roles serve on
  const prom = parseYaml(readFileSync(join(DEPLOY, "prometheus/prometheus.yml"), "utf8"), "prometheus.yml") as any;
  const job = (n: string) => prom.scrape_configs.find((j: any) => j.job_name === n);
  assert.deepEqual(job("coordinator").static_configs[0].targets, [`coordinator:${DEFAULT_METRICS_PORT.coordinator}`]);
  assert.equal(job("worker").dns_sd_configs[0].port, DEFAULT_METRICS_PORT.worker);
  assert.deepEqual(job("worker").dns_sd_configs[0].names, ["worker", "worker-gpu"]);
});

test("promtool accepts the compose and the Kubernetes Prometheus configs", () => {
  const dir = mkdtempSync(join(tmpdir(), "imdb-promcfg-"));
  try {
    const cm = k8s.find((d) => d.doc.kind === "ConfigMap" && d.doc.metadata.name === "imdb-train-prometheus")!.doc;
    // Debian's Prometheus is built without Kubernetes service discovery, so promtool rejects the
    // kubernetes_sd_configs block itself: check its shape here, and let promtool check the rest
    // (relabelling regexes, intervals) with a static target in its place.
    const cfg = parseYaml(cm.data["prometheus.yml"], "imdb-train-prometheus") as any;
    const keeps = (job: any) => job.relabel_configs.filter((r: any) => r.action === "keep").map((r: any) => `${r.source_labels[0]}=${r.regex}`);
    const [main, dcgm] = cfg.scrape_configs;
    assert.deepEqual(keeps(main), ["__meta_kubernetes_pod_label_app_kubernetes_io_part_of=imdb-train", "__meta_kubernetes_pod_annotation_prometheus_io_scrape=true"]);
    // the DCGM exporters, with their own pod labels (the pod holding each GPU)
    const exporter = k8s.find((d) => d.doc.kind === "DaemonSet" && d.doc.metadata.name === "dcgm-exporter")!.doc;
    assert.deepEqual(keeps(dcgm), [`__meta_kubernetes_pod_label_app_kubernetes_io_name=${exporter.spec.template.metadata.labels["app.kubernetes.io/name"]}`]);
    assert.equal(dcgm.honor_labels, true);
    assert.ok(podSpec(exporter).containers[0].ports.some((p: any) => dcgm.relabel_configs.some((r: any) => r.replacement === `$1:${p.containerPort}`)), "DCGM's port");
    assert.equal(exporter.spec.template.metadata.annotations?.["prometheus.io/scrape"], undefined, "not scraped twice");
    for (const job of cfg.scrape_configs) {
      assert.deepEqual(job.kubernetes_sd_configs, [{ role: "pod" }]);
      delete job.kubernetes_sd_configs;
      job.static_configs = [{ targets: ["placeholder:9401"] }];
    }
    const k8sConfig = join(dir, "k8s-prometheus.json.yml");
    writeFileSync(k8sConfig, JSON.stringify(cfg));
    for (const path of [join(DEPLOY, "prometheus/prometheus.yml"), k8sConfig]) {
      const r = spawnSync("promtool", ["check", "config", path], { encoding: "utf8" });
      assert.ifError(r.error);
      assert.equal(r.status, 0, `${path}: ${r.stdout}${r.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("runs end cleanly: GPU pods are Jobs that are not started again after the run, so no pod keeps a GPU; compose restarts failures only", () => {
  const gpuPods = k8s.filter((d) => K8S_WORKLOADS.has(d.doc.kind) && podSpec(d.doc).containers.some((c: any) => c.resources?.limits?.["nvidia.com/gpu"]));
  assert.ok(gpuPods.length > 0);
  for (const { doc } of gpuPods) {
    // a Deployment, StatefulSet or DaemonSet restarts a worker that exited 0 at the end of the run, GPU and all
    assert.equal(doc.kind, "Job", `${doc.kind}/${doc.metadata.name} requests a GPU: only a Job lets its pods finish`);
    assert.equal(podSpec(doc).restartPolicy, "Never", `${doc.metadata.name}: a failed pod is replaced by the Job, never restarted in place`);
  }
  const job = (name: string) => k8s.find((d) => d.doc.kind === "Job" && d.doc.metadata.name === name)!.doc;
  const worker = job("imdb-train-worker");
  const coordinator = job("imdb-train-coordinator");
  // work-queue Job: no completions, so it is complete once its workers have exited 0 after the coordinator's Stop
  assert.equal(worker.spec.completions, undefined);
  assert.equal(worker.spec.parallelism, Number(flagValue(podSpec(coordinator).containers[0].args, "workers")), "parallelism = the coordinator's --workers");
  assert.ok(podSpec(coordinator).containers[0].args.includes("--auto-resume"), "a replaced coordinator resumes");
  // exit statuses as the CLI sets them (src/errors.ts): a clean leave is ignored, a hopeless start fails the Job
  for (const doc of [worker, coordinator]) {
    const rules = doc.spec.podFailurePolicy.rules as any[];
    const codes = (action: string) => rules.filter((r) => r.action === action && r.onExitCodes).flatMap((r) => r.onExitCodes.values as number[]).sort((a, b) => a - b);
    assert.deepEqual(codes("Ignore"), [new AbortedError().exitCode], `${doc.metadata.name}: Ignore`);
    assert.deepEqual(codes("FailJob"), [new UsageError("").exitCode, new InputError("").exitCode, new ProtocolError("").exitCode], `${doc.metadata.name}: FailJob`);
    for (const r of rules.filter((x) => x.onExitCodes)) assert.equal(r.onExitCodes.containerName, podSpec(doc).containers[0].name);
    assert.ok(rules.some((r) => r.action === "Ignore" && r.onPodConditions?.some((c: any) => c.type === "DisruptionTarget")), "evictions are not failures");
    assert.ok(doc.spec.backoffLimit > 0);
  }
  // the one-command scale in the workers' header names the Job's parallelism
  const header = readFileSync(join(DEPLOY, "k8s/workers.yaml"), "utf8");
  assert.match(header, /kubectl patch job imdb-train-worker --type merge -p '\{"spec":\{"parallelism":\d+\}\}'/);
  // compose: ours restart only after a failure, so a finished run stays finished (and frees its GPUs)
  for (const [name, svc] of Object.entries<any>(compose.services).filter(([, s]) => s.image in OUR_IMAGES)) {
    assert.match(String(svc.restart ?? "no"), /^(no|on-failure(:\d+)?)$/, `compose ${name}: restart ${svc.restart}`);
  }
  for (const name of ["coordinator", "worker", "worker-gpu"]) assert.match(compose.services[name].restart, /^on-failure/, name);
});

test("defaults for users never point into this repository's test set-up (../shared)", () => {
  for (const { file, doc } of yamlDocs("deploy")) assert.doesNotMatch(JSON.stringify(doc), /shared\//, file);
  for (const file of ["compose.yaml", "compose.secure.yaml"]) assert.doesNotMatch(readFileSync(join(DEPLOY, file), "utf8"), /\.\.\/shared|aclImdb-train/, file);
});
