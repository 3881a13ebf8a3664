// Every error the project throws on purpose. Each carries a stable `code` and, where a file or a
// message is at fault, names it. Low-level failures are wrapped at the boundary with `cause`.

export class ImdbTrainError extends Error {
  /** Stable machine-readable code, e.g. "E_INPUT". */
  readonly code: string;
  /** Process exit status the CLI uses when this error ends a command. */
  readonly exitCode: number;
  constructor(message: string, opts: { code?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = opts.code ?? "E_IMDB_TRAIN";
    this.exitCode = opts.exitCode ?? 1;
  }
}

/** Bad command line: unknown option, value out of range. */
export class UsageError extends ImdbTrainError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { ...opts, code: "E_USAGE", exitCode: 2 });
  }
}

/** Input that cannot be trusted: a missing file, a corrupt archive, a bad dataset. `path` names it. */
export class InputError extends ImdbTrainError {
  readonly path: string | undefined;
  constructor(message: string, opts: { path?: string; cause?: unknown } = {}) {
    super(opts.path ? `${opts.path}: ${message}` : message, { cause: opts.cause, code: "E_INPUT", exitCode: 3 });
    this.path = opts.path;
  }
}

/** Output that could not be written (a full disk, a read-only file system, no permission). `path` names it. */
export class OutputError extends ImdbTrainError {
  readonly path: string;
  constructor(message: string, opts: { path: string; cause?: unknown }) {
    super(`${opts.path}: ${message}`, { cause: opts.cause, code: "E_OUTPUT", exitCode: 8 });
    this.path = opts.path;
  }
}

/** A wire message that breaks the protocol (version, layout hash, length, size limit). */
export class ProtocolError extends ImdbTrainError {
  constructor(message: string, opts: { cause?: unknown; code?: string } = {}) {
    super(message, { cause: opts.cause, code: opts.code ?? "E_PROTOCOL", exitCode: 4 });
  }
}

/** A peer or service that cannot be reached (ZeroMQ endpoint, NATS server). */
export class ConnectionError extends ImdbTrainError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { ...opts, code: "E_CONNECTION", exitCode: 5 });
  }
}

/** A peer refused our credentials (CURVE key, NATS token / nkey), or we refused theirs. */
export class AuthError extends ImdbTrainError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { ...opts, code: "E_AUTH", exitCode: 5 });
  }
}

/** A training run that cannot go on: a worker died with no way to continue, a step missed its deadline. */
export class TrainingError extends ImdbTrainError {
  constructor(message: string, opts: { cause?: unknown; code?: string } = {}) {
    super(message, { cause: opts.cause, code: opts.code ?? "E_TRAINING", exitCode: 6 });
  }
}

/** A requested backend or feature that this machine does not have. */
export class UnavailableError extends ImdbTrainError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { ...opts, code: "E_UNAVAILABLE", exitCode: 7 });
  }
}

/** The user interrupted (Ctrl-C / SIGTERM). */
export class AbortedError extends ImdbTrainError {
  constructor(message = "interrupted") {
    super(message, { code: "E_ABORTED", exitCode: 130 });
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
