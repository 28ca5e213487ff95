import { CourierError } from "../errors/mod.ts";

/**
 * A mail request that cannot be served as asked. `status` is the HTTP status
 * the API answers with; `toJson()` is its body.
 */
export class MailError extends CourierError {
  /** The HTTP status. */
  readonly status: number;
  /** The request field at fault, when one is. */
  readonly field?: string;
  /** Extra facts for the client (who holds a claim, until when…). */
  readonly extra: Record<string, unknown>;
  /** Seconds after which a retry may succeed (sent as `Retry-After`). */
  readonly retryAfterS?: number;

  /**
   * Creates a `MailError`.
   *
   * @param message What is wrong and what to do, in one line.
   * @param options HTTP status, field at fault, extra facts.
   */
  constructor(
    message: string,
    options: {
      status: number;
      field?: string;
      extra?: Record<string, unknown>;
      retryAfterS?: number;
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.name = "MailError";
    this.status = options.status;
    this.field = options.field;
    this.extra = options.extra ?? {};
    this.retryAfterS = options.retryAfterS;
  }

  /** The JSON body of the error response: `{error, field?, ...extra}`. */
  toJson(): Record<string, unknown> {
    return {
      error: this.message,
      ...(this.field === undefined ? {} : { field: this.field }),
      ...this.extra,
    };
  }
}

/** 400: a field of the request is missing or wrong. */
export class MailValidationError extends MailError {
  /**
   * Creates a `MailValidationError`.
   *
   * @param field The field at fault (`session_id`, `sender.id`, `provider`…).
   * @param message What is wrong with it.
   */
  constructor(field: string, message: string) {
    super(message, { status: 400, field });
    this.name = "MailValidationError";
  }
}

/** 404: no mail has this id. */
export class MailNotFoundError extends MailError {
  /**
   * Creates a `MailNotFoundError`.
   *
   * @param id The id asked for.
   * @param options `message`: a more precise one; `extra`: facts for the client.
   */
  constructor(id: string, options: { message?: string; extra?: Record<string, unknown> } = {}) {
    super(options.message ?? `no mail with id "${id}"; list them with GET /api/v1/messages`, {
      status: 404,
      extra: options.extra,
    });
    this.name = "MailNotFoundError";
  }
}

/** 409: the mail is not in a state that allows this (claimed by another agent, done…). */
export class MailConflictError extends MailError {
  /**
   * Creates a `MailConflictError`.
   *
   * @param message The conflict, e.g. who holds the claim and until when.
   * @param extra Facts for the client (`holder`, `expires_at`, `status`…).
   */
  constructor(message: string, extra: Record<string, unknown> = {}) {
    super(message, { status: 409, extra });
    this.name = "MailConflictError";
  }
}

/** 403: another agent holds the claim, so this one may not complete or fail the mail. */
export class MailForbiddenError extends MailError {
  /**
   * Creates a `MailForbiddenError`.
   *
   * @param message Who holds it.
   * @param extra Facts for the client (`holder`, `expires_at`).
   */
  constructor(message: string, extra: Record<string, unknown> = {}) {
    super(message, { status: 403, extra });
    this.name = "MailForbiddenError";
  }
}

/** 413: the request body is over the limit. */
export class PayloadTooLargeError extends MailError {
  /**
   * Creates a `PayloadTooLargeError`.
   *
   * @param limit The limit in bytes.
   */
  constructor(limit: number) {
    super(`request body is larger than ${limit} bytes`, { status: 413, extra: { limit } });
    this.name = "PayloadTooLargeError";
  }
}

/** 503: the service is stopping and takes no new work. */
export class MailUnavailableError extends MailError {
  /**
   * Creates a `MailUnavailableError`.
   *
   * @param message Why.
   */
  constructor(message = "courier is stopping; retry against the next instance") {
    super(message, { status: 503, retryAfterS: 1 });
    this.name = "MailUnavailableError";
  }
}

/** The error codes of a disk that cannot take the write (full, read-only, failing…). */
const STORAGE_CODES = new Set(["ENOSPC", "EDQUOT", "EROFS", "EIO", "EACCES", "EPERM", "EMFILE"]);

/** Whether `error` is the file system refusing an operation (not a bug of ours). */
export function isStorageFault(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return (typeof code === "string" && STORAGE_CODES.has(code)) ||
    error instanceof Deno.errors.PermissionDenied;
}

/**
 * 503: the disk refused a write (full, read-only…), so nothing was changed.
 * Says what could not be done and the system's words for why (which name
 * the file), with `Retry-After`.
 */
export class MailStorageError extends MailError {
  /**
   * Creates a `MailStorageError`.
   *
   * @param what What could not be done, e.g. `record the claim of lark_x`.
   * @param cause The file system error.
   * @param where The mailbox it happened in (named when the error does not name a path).
   */
  constructor(what: string, cause: unknown, where?: string) {
    let reason = cause instanceof Error ? cause.message : String(cause);
    if (where && !reason.includes("/")) reason += ` in ${where}`;
    super(
      `could not ${what}: ${reason}; nothing was changed. Free disk space or make the ` +
        `mailbox writable, then retry`,
      { status: 503, retryAfterS: 5, cause, extra: { storage_error: reason } },
    );
    this.name = "MailStorageError";
  }
}

/** 503: the mailbox is still being indexed, so the answer is not known yet. */
export class MailIndexingError extends MailError {
  /**
   * Creates a `MailIndexingError`.
   *
   * @param progress Mails indexed so far, and the folders still to do.
   */
  constructor(progress: { indexed: number; pending: string[] }) {
    super(
      `the mailbox is being indexed (${progress.indexed} mails so far; still reading ` +
        `${progress.pending.join(", ")}); retry in a moment`,
      { status: 503, retryAfterS: 1, extra: { indexing: progress } },
    );
    this.name = "MailIndexingError";
  }
}
