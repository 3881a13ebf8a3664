/// <reference types="@webgpu/types" />
// WebGPU device acquisition: the ONLY module that imports the `webgpu` package (Dawn's dawn.node).
//
// Real GPU: Dawn's default backends (Vulkan on Linux), core feature level, the adapter's own limits.
// No GPU (CI, this machine): Dawn's OpenGL ES backend over Mesa's llvmpipe, a software *compatibility*
// adapter; it needs EGL_PLATFORM=surfaceless (set here) and the Debian packages libegl1 libegl-mesa0
// libgles2 libgl1-mesa-dri. Compatibility defaults are small (128 invocations per workgroup, 4 storage
// buffers per stage): the device is always requested with every limit the adapter offers.
//
// Several GPUs: Dawn's node binding picks an adapter by a substring of its name (flag `adapter=`); the
// list of names comes from the error it throws for a name that matches nothing. `index` selects the
// i-th of that list (default: IMDB_TRAIN_GPU, else the first entry of CUDA_VISIBLE_DEVICES, else 0).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { UnavailableError, errorMessage } from "../../errors.js";
import { logger } from "../../output.js";

const log = logger("gpu");

export interface WebgpuModule {
  create(flags: string[]): GPU;
  globals: object;
}

export interface GpuDevice {
  device: GPUDevice;
  /** Adapter name as Dawn reports it, e.g. "NVIDIA H200" or "llvmpipe (LLVM 15.0.6, 256 bits)". */
  name: string;
  /** Dawn backend: "vulkan", "opengles", ... */
  backend: string;
  /** True on the software (llvmpipe) adapter: timings mean nothing there. */
  software: boolean;
  featureLevel: "core" | "compatibility";
  /** The Dawn instance that made the device: kept referenced (if collected, Dawn crashes the process). */
  instance: GPU;
}

export interface AcquireOptions {
  /** "gpu": a hardware adapter only; "software": llvmpipe only; "any" (default): hardware, else software. */
  kind?: "gpu" | "software" | "any";
  /** Index into the adapter list (several GPUs). */
  index?: number;
  /** Dawn toggles to enable, e.g. ["skip_validation", "disable_robustness"] (default: IMDB_TRAIN_DAWN_TOGGLES, comma-separated). */
  toggles?: string[];
}

let mod: Promise<WebgpuModule> | undefined;

/** The `webgpu` package, loaded once (also behind webgpuEntry, for tfjs's own webgpu backend). */
export function loadWebgpu(): Promise<WebgpuModule> {
  // llvmpipe's EGL needs no display with this; set before Dawn first initialises its GL backend.
  process.env.EGL_PLATFORM ??= "surfaceless";
  mod ??= import("webgpu").then((w): WebgpuModule => {
    Object.assign(globalThis, w.globals); // GPUBufferUsage, GPUMapMode, ... as in a browser
    return w;
  });
  return mod;
}

/**
 * navigator.gpu for tfjs's own webgpu backend: a Dawn instance on the default backends. src/engine/index.ts
 * hands this to useBackend (src/tfjs.ts) as its WebGPU loader.
 */
export async function webgpuEntry(): Promise<GPU> {
  if (!vulkanLoaderPresent()) throw new Error("no Vulkan loader (libvulkan.so.1) on this machine");
  return (await loadWebgpu()).create([]);
}

const LOADER_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu", "/lib64", "/usr/local/lib"];

/**
 * Whether a hardware adapter is worth asking Dawn for. On Linux, Dawn reaches GPUs through the Vulkan
 * loader (libvulkan.so.1); without it every probe only prints Dawn's "Couldn't load Vulkan" warnings.
 */
export function vulkanLoaderPresent(env: NodeJS.ProcessEnv = process.env): boolean {
  if (process.platform !== "linux") return true;
  const dirs = [...(env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean), ...LOADER_DIRS];
  return dirs.some((d) => existsSync(join(d, "libvulkan.so.1")));
}

/** Adapter selection index from the environment: IMDB_TRAIN_GPU, else CUDA_VISIBLE_DEVICES' first entry. */
export function envAdapterIndex(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env.IMDB_TRAIN_GPU ?? env.CUDA_VISIBLE_DEVICES?.split(",")[0];
  if (raw === undefined || raw.trim() === "") return undefined;
  const n = Number(raw);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

export interface AdapterEntry { backend: string; name: string }

/** Adapters Dawn finds for `backend` ("" = default backends), parsed from the error it throws for no match. */
export async function listAdapters(backend = ""): Promise<AdapterEntry[]> {
  const w = await loadWebgpu();
  const flags = ["adapter=imdb-train-lists-adapters-by-asking-for-none"];
  if (backend) flags.push(`backend=${backend}`);
  try {
    // Compatibility level lists every adapter (core-only requests hide the OpenGL ES ones).
    const a = await w.create(flags).requestAdapter({ featureLevel: "compatibility" } as GPURequestAdapterOptions);
    return a ? [{ backend: backend || "default", name: a.info.description || a.info.device }] : [];
  } catch (err) {
    return parseAdapterList(errorMessage(err));
  }
}

/** Entries of Dawn's " * backend: 'vulkan', name: 'NVIDIA H200'" lines. */
export function parseAdapterList(message: string): AdapterEntry[] {
  return [...message.matchAll(/backend: '([^']*)', name: '([^']*)'/g)].map((m) => ({ backend: m[1], name: m[2] }));
}

/** The hardware adapters of a list (no OpenGL ES / null / software rasterisers), in Dawn's order. */
export function hardwareAdapters(list: AdapterEntry[]): AdapterEntry[] {
  return list.filter((a) => !["opengles", "opengl", "null"].includes(a.backend) && !/llvmpipe|swiftshader|lavapipe/i.test(a.name));
}

/** Every numeric limit the adapter offers (compatibility defaults are far below what the kernels need). */
function adapterLimits(limits: GPUSupportedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key in limits) {
    if (!isLimitName(limits, key)) continue;
    const v = limits[key];
    if (typeof v === "number") out[key] = v;
  }
  return out;
}

function isLimitName(limits: GPUSupportedLimits, key: string): key is keyof GPUSupportedLimits {
  return key in limits;
}

async function requestDevice(adapter: GPUAdapter): Promise<GPUDevice> {
  const requiredLimits = adapterLimits(adapter.limits);
  // GPU timestamps for the benchmark's per-phase breakdown, where the adapter has them.
  const requiredFeatures: GPUFeatureName[] = adapter.features.has("timestamp-query") ? ["timestamp-query"] : [];
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  } catch (err) {
    if (requiredFeatures.length === 0) throw err;
    log.warn(`requestDevice with timestamp-query failed (${errorMessage(err)}); without it`);
    device = await adapter.requestDevice({ requiredLimits });
  }
  device.lost.then((info) => { if (info.reason !== "destroyed") log.error(`WebGPU device lost: ${info.message}`); });
  return device;
}

/** Instances that made a device, held for the life of the process (see GpuDevice.instance). */
const instances: GPU[] = [];

async function tryAdapter(backend: string, featureLevel: GpuDevice["featureLevel"], name?: string, toggles: string[] = []): Promise<{ adapter: GPUAdapter | null; instance: GPU }> {
  const w = await loadWebgpu();
  const flags: string[] = [];
  if (toggles.length) flags.push(`enable-dawn-features=${toggles.join(",")}`);
  if (backend) flags.push(`backend=${backend}`);
  if (name) flags.push(`adapter=${name}`);
  const instance = w.create(flags);
  const adapter = await instance.requestAdapter({ featureLevel, powerPreference: "high-performance" } as GPURequestAdapterOptions);
  return { adapter, instance };
}

/** The hardware adapter of index `index` (several GPUs), or the only one; throws UnavailableError for an index past the list. */
async function pickHardware(index: number): Promise<{ pick?: AdapterEntry; hw: AdapterEntry[] }> {
  const hw = hardwareAdapters(await listAdapters());
  if (hw.length === 1) return { pick: { backend: hw[0].backend, name: "" }, hw };
  if (hw.length === 0) return { hw };
  if (index >= hw.length) throw new UnavailableError(`GPU index ${index} requested but only ${hw.length} adapters exist: ${hw.map((a) => a.name).join("; ")}`);
  const pick = hw[index];
  if (hw.filter((a) => a.name === pick.name).length > 1) {
    log.warn(`GPU ${index} shares the name "${pick.name}" with another adapter: Dawn's node binding selects by name, so the first of them is used (give each worker one visible GPU instead, e.g. one container per GPU)`);
  }
  return { pick, hw };
}

/** A device on a hardware adapter, or undefined with the reason pushed to `tried`. */
async function hardwareDevice(opts: AcquireOptions, toggles: string[], tried: string[]): Promise<GpuDevice | undefined> {
  if (!vulkanLoaderPresent()) {
    tried.push("default backends: no Vulkan loader (libvulkan.so.1) on this machine");
    return undefined;
  }
  try {
    const index = opts.index ?? envAdapterIndex() ?? 0;
    const { pick, hw } = await pickHardware(index);
    const name = pick?.name || undefined;
    const { adapter, instance } = await tryAdapter(pick?.backend ?? "", "core", name, toggles);
    if (adapter && !adapter.isFallbackAdapter) {
      const device = await requestDevice(adapter);
      instances.push(instance);
      const n = name ?? hw[0]?.name ?? (adapter.info.description || adapter.info.device || "gpu");
      log.debug(`WebGPU adapter ${n} (${adapter.info.vendor}, index ${index} of ${hw.length || 1})`);
      return { device, name: n, backend: pick?.backend ?? "default", software: false, featureLevel: "core", instance };
    }
    tried.push(adapter ? "default backends: only a fallback adapter" : "default backends: no adapter");
  } catch (err) {
    if (err instanceof UnavailableError) throw err;
    tried.push(`default backends: ${errorMessage(err)}`);
  }
  return undefined;
}

/** A device on Dawn's OpenGL ES backend (llvmpipe without a GPU), or undefined with the reason pushed to `tried`. */
async function openglesDevice(toggles: string[], tried: string[]): Promise<GpuDevice | undefined> {
  process.env.EGL_PLATFORM ??= "surfaceless"; // llvmpipe's EGL without a display
  try {
    const { adapter, instance } = await tryAdapter("opengles", "compatibility", undefined, toggles);
    if (!adapter) {
      tried.push("opengles: no adapter (are libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri installed?)");
      return undefined;
    }
    const device = await requestDevice(adapter);
    instances.push(instance);
    const names = await listAdapters("opengles").catch(() => []);
    const name = names[0]?.name ?? "opengles";
    // Software unless the GL driver is a real GPU's (only --adapter software/any get here).
    const software = !names[0] || /llvmpipe|softpipe|swiftshader/i.test(name);
    return { device, name, backend: "opengles", software, featureLevel: "compatibility", instance };
  } catch (err) {
    tried.push(`opengles: ${errorMessage(err)}`);
    return undefined;
  }
}

/**
 * A WebGPU device. Throws UnavailableError naming what was tried when no adapter of the wanted kind exists.
 */
export async function acquireDevice(opts: AcquireOptions = {}): Promise<GpuDevice> {
  const kind = opts.kind ?? "any";
  const toggles = opts.toggles ?? (process.env.IMDB_TRAIN_DAWN_TOGGLES ?? "").split(",").map((x) => x.trim()).filter(Boolean);
  if (toggles.length) log.info(`Dawn toggles: ${toggles.join(", ")}`);
  const tried: string[] = [];
  const hw = kind !== "software" ? await hardwareDevice(opts, toggles, tried) : undefined;
  if (hw) return hw;
  const sw = kind !== "gpu" ? await openglesDevice(toggles, tried) : undefined;
  if (sw) return sw;
  throw new UnavailableError(`no WebGPU adapter (${tried.join("; ")})`);
}
