/** TCP states as the kernel numbers them in `/proc/net/tcp`. */
const TCP_STATES: Record<string, string> = {
  "01": "ESTABLISHED",
  "02": "SYN_SENT",
  "03": "SYN_RECV",
  "04": "FIN_WAIT1",
  "05": "FIN_WAIT2",
  "06": "TIME_WAIT",
  "07": "CLOSE",
  "08": "CLOSE_WAIT",
  "09": "LAST_ACK",
  "0A": "LISTEN",
  "0B": "CLOSING",
  "0C": "NEW_SYN_RECV",
};

/** One TCP socket from the kernel's socket table. */
export interface SocketEntry {
  /** `4` or `6`. */
  family: 4 | 6;
  /** Local address, printed (`127.0.0.1`, `::1`, `0.0.0.0`, `::`…). */
  localAddress: string;
  /** Local port. */
  localPort: number;
  /** Remote port (0 for listening sockets). */
  remotePort: number;
  /** State name: `LISTEN`, `ESTABLISHED`, `TIME_WAIT`… */
  state: string;
  /** Owning user ID. */
  uid: number;
  /** Socket inode (0 for TIME_WAIT sockets, which no process owns). */
  inode: number;
}

function ipv4(hex: string): string {
  // Little-endian 32-bit word.
  const bytes = hex.match(/../g)!.map((b) => parseInt(b, 16)).reverse();
  return bytes.join(".");
}

function ipv6(hex: string): string {
  // Four little-endian 32-bit words.
  const bytes: string[] = [];
  for (let word = 0; word < 4; word++) {
    bytes.push(...hex.toLowerCase().slice(word * 8, word * 8 + 8).match(/../g)!.reverse());
  }
  if (bytes.slice(0, 10).every((b) => b === "00") && bytes[10] + bytes[11] === "ffff") {
    return `::ffff:${bytes.slice(12).map((b) => parseInt(b, 16)).join(".")}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(parseInt(bytes[i] + bytes[i + 1], 16));
  // Compress the longest run of two or more zero groups, as RFC 5952 says.
  let bestStart = -1, bestLength = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength && j - i >= 2) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const text = groups.map((g) => g.toString(16));
  if (bestStart < 0) return text.join(":");
  const head = text.slice(0, bestStart).join(":");
  const tail = text.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}

/** Parses the text of `/proc/net/tcp` or `/proc/net/tcp6`. */
export function parseSocketTable(text: string, family: 4 | 6): SocketEntry[] {
  const entries: SocketEntry[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [localHex, localPortHex] = f[1].split(":");
    const [, remotePortHex] = f[2].split(":");
    entries.push({
      family,
      localAddress: family === 4 ? ipv4(localHex) : ipv6(localHex),
      localPort: parseInt(localPortHex, 16),
      remotePort: parseInt(remotePortHex, 16),
      state: TCP_STATES[f[3].toUpperCase()] ?? f[3],
      uid: Number(f[7]),
      inode: Number(f[9]),
    });
  }
  return entries;
}

/**
 * All TCP sockets of this network namespace, IPv4 and IPv6, from
 * `/proc/net/tcp*`. Returns `null` where those files do not exist (not
 * Linux), so callers can fall back to other means.
 */
export async function readSocketTable(): Promise<SocketEntry[] | null> {
  const entries: SocketEntry[] = [];
  let readAny = false;
  for (const [path, family] of [["/proc/net/tcp", 4], ["/proc/net/tcp6", 6]] as const) {
    try {
      entries.push(...parseSocketTable(await Deno.readTextFile(path), family));
      readAny = true;
    } catch {
      // tcp6 is missing when IPv6 is disabled; both are missing off Linux.
    }
  }
  return readAny ? entries : null;
}
