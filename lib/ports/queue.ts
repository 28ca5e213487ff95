import { readSmallTextSync } from "../fs/mod.ts";
import type { ProcessIdentity } from "../proc/mod.ts";
import type { PortRangeUsage } from "./errors.ts";
import { isValidPort, type PortRange } from "./range.ts";
import type { Lease } from "./registry.ts";
import { isRecord, tryParseJson } from "./json.ts";

/** A lease asked for through the queue. */
export interface AllocateOp {
  /** The operation. */
  kind: "allocate";
  /** Who will hold the lease (`null`: its TTL alone). */
  owner: ProcessIdentity | null;
  /** Port to try first. */
  preferred: number | null;
  /** Ports to choose from. */
  range: PortRange;
  /** Host to probe. */
  host: string;
  /** Time to live in milliseconds, `null` for none. */
  ttl_ms: number | null;
  /** Free text. */
  label: string | null;
  /** Whether TIME_WAIT-only ports count as free (absent: no). */
  reuse_addr?: boolean;
}

/** A release asked for through the queue. */
export interface ReleaseOp {
  /** The operation. */
  kind: "release";
  /** The port to release. */
  port: number;
  /** Release only if this PID owns the lease (`null`: whoever does). */
  owner_pid: number | null;
}

/** A request waiting in the queue for whoever holds the registry lock next. */
export interface QueuedRequest {
  /** Sortable unique id: `<ms since epoch, 13 digits>-<pid>-<sequence>`. */
  id: string;
  /** The process that asked (a dead requester's request is discarded). */
  requester: ProcessIdentity;
  /** The requester's network namespace: only a holder in the same one may probe ports for it. */
  netns: string | null;
  /** What it asks for. */
  op: AllocateOp | ReleaseOp;
}

/** What {@link RequestQueue.scan} finds. */
export interface QueueScan {
  /** Requests waiting for an answer, oldest first. */
  pending: QueuedRequest[];
  /** The answers left already, by request id (their requesters have not collected them yet). */
  answered: Map<string, Answer>;
}

/** What the lock holder answered. */
export type Answer =
  | { lease: Lease }
  | { no_free_port: { range: PortRange; usage: PortRangeUsage } }
  | { released: boolean };

const REQUEST = ".req";
/** An older courier's queue kept answers in files of their own. */
const LEGACY_ANSWER = ".ans";

/**
 * Files nobody will collect (a request half-written by a requester that
 * died, an answer its requester never took) are removed after 60 s.
 */
const GARBAGE_MS = 60_000;

let sequence = 0;
let netnsCache: string | null | undefined;

/** This process's network namespace (`net:[4026531840]`), or `null` where it cannot be told. */
export function currentNetns(): string | null {
  if (netnsCache === undefined) {
    try {
      netnsCache = Deno.readLinkSync("/proc/self/ns/net");
    } catch {
      netnsCache = null;
    }
  }
  return netnsCache;
}

/** A new request id, sortable by creation time. */
export function newRequestId(now: number): string {
  return `${String(Math.floor(now)).padStart(13, "0")}-${Deno.pid}-${++sequence}`;
}

function isIdentity(value: unknown): value is ProcessIdentity {
  return isRecord(value) && Number.isInteger(value.pid) && (value.pid as number) > 0 &&
    typeof value.startTime === "string" &&
    (value.bootId === undefined || typeof value.bootId === "string");
}

function isRange(value: unknown): value is PortRange {
  return isRecord(value) && typeof value.start === "number" && typeof value.end === "number" &&
    isValidPort(value.start) && isValidPort(value.end) && value.start <= value.end;
}

function isOp(op: unknown): op is AllocateOp | ReleaseOp {
  if (!isRecord(op)) return false;
  if (op.kind === "release") {
    return typeof op.port === "number" && isValidPort(op.port) &&
      (op.owner_pid === null || Number.isInteger(op.owner_pid));
  }
  return op.kind === "allocate" && (op.owner === null || isIdentity(op.owner)) &&
    (op.preferred === null || (typeof op.preferred === "number" && isValidPort(op.preferred))) &&
    isRange(op.range) && typeof op.host === "string" &&
    (op.ttl_ms === null || (typeof op.ttl_ms === "number" && op.ttl_ms > 0)) &&
    (op.label === null || typeof op.label === "string") &&
    (op.reuse_addr === undefined || typeof op.reuse_addr === "boolean");
}

/** Validates a request line: anything else is skipped, never served. */
function parseRequest(line: string): QueuedRequest | null {
  const raw = tryParseJson(line);
  if (!isRecord(raw) || typeof raw.id !== "string" || !isIdentity(raw.requester)) return null;
  if (!(raw.netns === null || typeof raw.netns === "string") || !isOp(raw.op)) return null;
  return { id: raw.id, requester: raw.requester, netns: raw.netns, op: raw.op };
}

/**
 * Splits a request file into its request line and, once a holder appended
 * one, its answer line (`null` while there is none, or only part of one).
 */
function splitRequestFile(text: string): { request: string; answer: Answer | null } {
  const end = text.indexOf("\n");
  if (end < 0) return { request: text, answer: null };
  const rest = text.slice(end + 1);
  const answer = rest.endsWith("\n") ? tryParseJson(rest) : undefined;
  return { request: text.slice(0, end), answer: isRecord(answer) ? answer as Answer : null };
}

/**
 * Requests waiting for the registry lock: group commit across processes.
 *
 * Each allocation or release first drops its request into the queue
 * directory (`<id>.req`, one JSON line) and then waits. Whoever gets the
 * lock serves every request queued by then in one read-modify-write of the
 * registry (one read, one write) and appends each answer to its request
 * file as a second line before letting go; the waiters, woken together when
 * it lets go (`HolderWatch`), read their answers in parallel, remove their
 * files and leave. Under contention, N queued operations cost one registry
 * write instead of N, and no answered waiter queues behind another.
 *
 * A file is created once, by its requester, and only ever appended to:
 * creating a file costs the holder several times what an append does, and
 * truncating one to rewrite it makes ext4 flush it to disk on close. The
 * holder reads request files under the lock; one being written as it looks,
 * or not a valid request, is skipped (and removed once a minute old). A
 * requester reads its answer once the holder that wrote it has let go.
 */
export class RequestQueue {
  /** The queue directory. */
  readonly dir: string;

  /**
   * A queue kept in `dir`; nothing is touched on disk until it is used.
   *
   * @param dir The queue directory (`<run>/ports.queue`).
   */
  constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates the queue directory if needed. */
  async prepare(): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  #path(id: string, suffix: string): string {
    return `${this.dir}/${id}${suffix}`;
  }

  /**
   * Queues `request` (a new file, written in one call; the queue directory
   * is private, so the file needs no mode of its own).
   */
  post(request: QueuedRequest): void {
    Deno.writeTextFileSync(this.#path(request.id, REQUEST), `${JSON.stringify(request)}\n`, {
      createNew: true,
    });
  }

  /**
   * The answer to request `id`, if a lock holder left one. Read it once the
   * holder let go of the lock: one being written reads as no answer.
   */
  takeAnswer(id: string): Answer | null {
    let text: string;
    try {
      text = readSmallTextSync(this.#path(id, REQUEST));
    } catch {
      return null;
    }
    return splitRequestFile(text).answer;
  }

  /**
   * Leaves the answer to `request` (call under the exclusive lock, after the
   * registry is written): one line appended to its file, never creating it.
   */
  answer(request: QueuedRequest, answer: Answer): void {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(this.#path(request.id, REQUEST), { append: true });
    } catch {
      return; // withdrawn: its requester gave up, or finds its lease by request id
    }
    try {
      file.writeSync(new TextEncoder().encode(`${JSON.stringify(answer)}\n`));
    } catch {
      // A disk error: the requester finds its lease by request id, or asks again.
    } finally {
      file.close();
    }
  }

  /** Removes request `id` and its answer (safe outside the lock); one already gone is no error. */
  withdraw(id: string): void {
    this.#remove(this.#path(id, REQUEST));
  }

  #remove(path: string): void {
    try {
      Deno.removeSync(path);
    } catch {
      // never written, or already gone
    }
  }

  /**
   * The requests waiting for an answer, oldest first (call under the
   * exclusive lock), except those in `skip` (already seen), and the answers
   * left already. On the way it removes what nobody will collect: files a
   * minute old that are not valid requests or whose answer was never
   * collected (their requester died; one that merely stalled finds its lease
   * again by its request id), and an older courier's answer files once
   * their request is gone or they are a minute old.
   */
  scan(now: number, skip?: ReadonlySet<string>): QueueScan {
    const ids: string[] = [];
    const legacy: string[] = [];
    const answered = new Map<string, Answer>();
    try {
      for (const entry of Deno.readDirSync(this.dir)) {
        const name = entry.name;
        if (name.endsWith(REQUEST)) ids.push(name.slice(0, -REQUEST.length));
        else if (name.endsWith(LEGACY_ANSWER)) legacy.push(name.slice(0, -LEGACY_ANSWER.length));
      }
    } catch {
      return { pending: [], answered };
    }
    const pending: QueuedRequest[] = [];
    const old = (id: string) => !(now - Number(id.split("-")[0]) < GARBAGE_MS);
    for (const id of ids.sort()) {
      if (skip?.has(id)) continue;
      let text: string;
      try {
        text = readSmallTextSync(this.#path(id, REQUEST));
      } catch {
        continue; // withdrawn meanwhile
      }
      const { request: line, answer } = splitRequestFile(text);
      if (answer) {
        answered.set(id, answer);
        if (old(id)) this.withdraw(id);
        continue;
      }
      const request = parseRequest(line);
      if (!request || request.id !== id) {
        // Being written right now, or left half-written by a requester that died.
        if (old(id)) this.withdraw(id);
        continue;
      }
      pending.push(request);
    }
    if (legacy.length > 0) {
      const requested = new Set(ids);
      for (const id of legacy) {
        if (!requested.has(id) || old(id)) this.#remove(this.#path(id, LEGACY_ANSWER));
      }
    }
    return { pending, answered };
  }
}
