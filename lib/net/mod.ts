/**
 * Ports and sockets: bind probes on IPv4 and IPv6, the kernel's socket
 * tables, and who holds a port.
 *
 * @module
 */
export * from "./port_holder.ts";
export * from "./port_probe.ts";
export * from "./socket_table.ts";
