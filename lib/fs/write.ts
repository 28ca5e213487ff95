/** Anything `write` can go to: an open file, a socket. */
export interface ByteWriter {
  /** Writes some of `bytes` and says how many. */
  write(bytes: Uint8Array): Promise<number>;
}

/** Writes all of `bytes` (a single `write` may take only part of them). */
export async function writeAll(target: ByteWriter, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await target.write(bytes.subarray(written));
}
