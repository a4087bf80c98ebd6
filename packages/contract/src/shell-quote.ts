// STUB: signatures fixed; the implementation is being written.
/** Quotes one argument for a POSIX shell so the program receives exactly these bytes. */
export declare function shellQuote(arg: string): string;
/** Quotes argv into one POSIX shell command line. */
export declare function argvToShell(argv: readonly string[]): string;
