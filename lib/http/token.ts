/**
 * The API token file (`<home>/run/api.token`): one line, at least 256
 * random bits, mode 0600. This module has no Node imports: reading the
 * token is on the path of `courier status`.
 *
 * @module
 */
import { CourierError, ExitCode } from "../errors/mod.ts";
import { importLazily } from "../lazy/mod.ts";

/** Random bytes in a token courier generates: 256 bits. */
export const TOKEN_BYTES = 32;

/** The mode of the token file: its owner reads and writes it, nobody else. */
export const TOKEN_FILE_MODE = 0o600;

/** RFC 6750 `token68` characters; at least 32 of them (a hand-written token must be long too). */
const TOKEN_PATTERN = /^[A-Za-z0-9._~+/-]{32,1024}=*$/;

/** What is wrong with a token file. */
export type TokenProblem = "missing" | "unreadable" | "invalid";

/** The API token file is missing, unreadable, or does not hold a token. Exit code 3. */
export class TokenFileError extends CourierError {
  /** The token file. */
  readonly path: string;
  /** What is wrong with it. */
  readonly problem: TokenProblem;

  /**
   * Creates a `TokenFileError`.
   *
   * @param path The token file.
   * @param problem What is wrong with it.
   * @param cause The underlying error.
   */
  constructor(path: string, problem: TokenProblem, cause?: unknown) {
    const reason = cause instanceof Error ? ` (${cause.message.replace(/: [^:]*$/, "")})` : "";
    const messages: Record<TokenProblem, string> = {
      missing: `No API token at ${path}. The daemon creates it when it starts; ` +
        `'courier token' creates it now (a running daemon takes it within a second).`,
      unreadable: `Cannot read the API token ${path}${reason}. Run courier as the user who ` +
        `owns this home, or give the file back to that user (chmod 600 ${path}).`,
      invalid: `${path} does not hold an API token (one line of at least 32 letters, digits ` +
        `or -._~+/). Run 'courier token rotate' to write a new one.`,
    };
    super(messages[problem], { exitCode: ExitCode.Permission, cause });
    this.name = "TokenFileError";
    this.path = path;
    this.problem = problem;
  }
}

/** A new token: {@link TOKEN_BYTES} bytes from the system's CSPRNG, base64url (43 characters). */
export function generateToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(TOKEN_BYTES));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** The token a token file's text holds (surrounding white space ignored), or `null`. */
export function parseToken(text: string): string | null {
  const token = text.trim();
  return TOKEN_PATTERN.test(token) ? token : null;
}

function readError(path: string, error: unknown): TokenFileError {
  return new TokenFileError(
    path,
    error instanceof Deno.errors.NotFound ? "missing" : "unreadable",
    error,
  );
}

function tokenOf(path: string, text: string): string {
  const token = parseToken(text);
  if (token === null) throw new TokenFileError(path, "invalid");
  return token;
}

/**
 * Reads the API token from `path`.
 *
 * @throws {TokenFileError} when it is missing, unreadable or holds no token.
 */
export async function readTokenFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw readError(path, error);
  }
  return tokenOf(path, text);
}

/**
 * Reads the API token from `path`, synchronously (see {@link readTokenFile}).
 *
 * @throws {TokenFileError} when it is missing, unreadable or holds no token.
 */
export function readTokenFileSync(path: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    throw readError(path, error);
  }
  return tokenOf(path, text);
}

/**
 * Creates the token file with a new token, atomically: the token is written
 * to a temporary file created with mode 0600 (`createNew`) and fsynced, then
 * hard-linked to `path`, which fails if `path` exists. So the file is never
 * readable by others, never seen empty, and two processes creating it at once
 * agree on one token. Returns the token, or `null` when the file already exists.
 */
export async function createTokenFile(path: string): Promise<string | null> {
  const token = generateToken();
  const bytes = new TextEncoder().encode(token + "\n");
  const tmp = `${path}.${Deno.pid}.${generateToken().slice(0, 8)}.tmp`;
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: TOKEN_FILE_MODE });
  try {
    await (await writer()).writeAll(file, bytes);
    await file.syncData();
  } finally {
    file.close();
  }
  let created = false;
  try {
    await Deno.link(tmp, path);
    created = true;
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) created = await createDirectly(path, bytes);
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
  if (!created) return null;
  const { syncDirectory } = await importLazily<typeof import("../fs/atomic_write.ts")>(
    "../fs/atomic_write.ts",
    import.meta.url,
  );
  await syncDirectory(path.slice(0, path.lastIndexOf("/")) || "/");
  return token;
}

/** Where hard links are not supported: create `path` itself with O_EXCL and mode 0600. */
async function createDirectly(path: string, bytes: Uint8Array): Promise<boolean> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { write: true, createNew: true, mode: TOKEN_FILE_MODE });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    throw error;
  }
  try {
    await (await writer()).writeAll(file, bytes);
    await file.syncData();
  } finally {
    file.close();
  }
  return true;
}

/**
 * The token in `path`, creating the file with a new token when there is
 * none (see {@link createTokenFile}).
 *
 * @throws {TokenFileError} when the file exists but is unreadable or holds no token.
 */
export async function ensureTokenFile(path: string): Promise<{ token: string; created: boolean }> {
  try {
    return { token: await readTokenFile(path), created: false };
  } catch (error) {
    if (!(error instanceof TokenFileError) || error.problem !== "missing") throw error;
  }
  const token = await createTokenFile(path);
  if (token !== null) return { token, created: true };
  return { token: await readTokenFile(path), created: false }; // another process was first
}

/**
 * Replaces the token in `path` with a new one, atomically: a temporary file
 * (mode 0600, fsynced) is renamed over it, so readers see the old token or
 * the new one, never a mix, and the file is never readable by others.
 * Returns the new token.
 */
export async function rotateTokenFile(path: string): Promise<string> {
  const token = generateToken();
  const { writeFileAtomic } = await importLazily<typeof import("../fs/atomic_write.ts")>(
    "../fs/atomic_write.ts",
    import.meta.url,
  );
  await writeFileAtomic(path, token + "\n", { mode: TOKEN_FILE_MODE });
  return token;
}

/** The file writer, loaded only by those that write a token (readers never do). */
function writer(): Promise<typeof import("../fs/write.ts")> {
  return importLazily<typeof import("../fs/write.ts")>("../fs/write.ts", import.meta.url);
}
