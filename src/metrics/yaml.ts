// The only module that imports `yaml`: generated provisioning files and the deploy tests use it.
import { parse, parseAllDocuments, stringify } from "yaml";
import { InputError } from "../errors.js";

export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0 });
}

/** Every document of a (multi-document) YAML text; a syntax error names `path`. */
export function parseYamlDocuments(text: string, path: string): unknown[] {
  const docs = parseAllDocuments(text, { merge: true });
  if (!Array.isArray(docs)) return [];
  const out: unknown[] = [];
  for (const d of docs) {
    if (d.errors.length > 0) throw new InputError(`invalid YAML: ${d.errors[0]!.message}`, { path });
    const v: unknown = d.toJS();
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

export function parseYaml(text: string, path: string): unknown {
  try {
    return parse(text, { merge: true });
  } catch (err) {
    throw new InputError(`invalid YAML: ${(err as Error).message}`, { path, cause: err });
  }
}
