// What the NBD server serves: an export is a small table of callbacks (nbdkit's plugin shape),
// plus the metadata contexts it can describe with BLOCK_STATUS.

/**
 * One run of bytes in a BLOCK_STATUS answer. `flags` are per context: for base:allocation
 * 1 = HOLE, 2 = ZERO; for a dirty-bitmap context 1 = dirty.
 */
export interface NbdExtent {
  readonly lengthBytes: number;
  readonly flags: number;
}

/** A metadata context beyond base:allocation, such as 'qemu:dirty-bitmap:tidemark-oos'. */
export interface NbdMetaContextSource {
  readonly name: string;
  /** Extents from `offsetBytes` on, covering at most `bytes` bytes (at least one extent). */
  extents(offsetBytes: number, bytes: number): Promise<NbdExtent[]>;
}

export interface NbdExport {
  /** The name clients ask for. The empty name ('' — the "default export") maps to the server's first export. */
  readonly name: string;
  readonly description?: string;
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  /** NBD_INFO_BLOCK_SIZE: powers of two; defaults 1 and 4096. */
  readonly minBlockBytes?: number;
  readonly preferredBlockBytes?: number;
  read(offsetBytes: number, bytes: number): Promise<Uint8Array>;
  /**
   * Resolves once the data is written (and, with `fua`, durable); undefined when it was written
   * before returning (the common small write: no promise to make or wait for). May throw
   * instead of rejecting. `data` is lent: the server reuses its memory once the write is done,
   * so an export that keeps it must copy it.
   */
  write(offsetBytes: number, data: Uint8Array, options: { fua: boolean }): Promise<void> | undefined;
  flush(): Promise<void>;
  trim(offsetBytes: number, bytes: number): Promise<void>;
  writeZeroes(offsetBytes: number, bytes: number, options: { fua: boolean; mayTrim: boolean }): Promise<void>;
  /** base:allocation extents (flags HOLE = 1, ZERO = 2). */
  allocation(offsetBytes: number, bytes: number): Promise<NbdExtent[]>;
  readonly metaContexts?: readonly NbdMetaContextSource[];
}
