/** Default port of the Courier service. */
export const DEFAULT_PORT = 8644;
/** Default host of the Courier service. */
export const DEFAULT_HOST = "127.0.0.1";
