/**
 * One buffer that grows by doubling, for bytes gathered a piece at a time.
 * @module
 */

const EMPTY = new Uint8Array(0);

/**
 * Bytes gathered into one buffer that grows by doubling (so many small pieces cost few copies),
 * up to a limit a caller may give. Message assembly, request heads and the inflate history are
 * built on it.
 */
export class GrowableBuffer {
  #bytes: Uint8Array | null = null;
  #length = 0;
  readonly #minimum: number;

  /** An empty buffer; the first allocation holds at least `minimum` bytes. */
  constructor(minimum = 256) {
    this.#minimum = minimum;
  }

  /** Bytes of content. */
  get length(): number {
    return this.#length;
  }

  /** Bytes allocated. */
  get capacity(): number {
    return this.#bytes?.length ?? 0;
  }

  /** The content, as a view that is valid until the buffer next changes. */
  get bytes(): Uint8Array {
    return this.#bytes === null ? EMPTY : this.#bytes.subarray(0, this.#length);
  }

  /** The room after the content, as a view: bytes written there count once {@linkcode grow} says so. */
  get spare(): Uint8Array {
    return this.#bytes === null ? EMPTY : this.#bytes.subarray(this.#length);
  }

  /**
   * Makes room for `total` bytes of content, keeping what is there: at least doubling, and at
   * least `hint`, but not past `limit` (nor below `total`).
   */
  reserve(total: number, limit = Infinity, hint = 0): void {
    const bytes = this.#bytes;
    if (bytes !== null && bytes.length >= total) return;
    const size = Math.max(total, Math.min(limit, Math.max(this.#minimum, hint, 2 * (bytes?.length ?? 0))));
    const grown = new Uint8Array(size);
    if (bytes !== null) grown.set(bytes.subarray(0, this.#length));
    this.#bytes = grown;
  }

  /**
   * Appends `piece` (growing as {@linkcode reserve} does). A piece that already lies in the spare
   * room right after the content (it was read there) is counted without a copy.
   */
  append(piece: Uint8Array, limit = Infinity, hint = 0): void {
    const bytes = this.#bytes;
    // Offsets first: most pieces are views of a read chunk, and their buffer need not be looked up.
    if (
      bytes !== null && piece.byteOffset === bytes.byteOffset + this.#length && piece.buffer === bytes.buffer
    ) {
      this.#length += piece.length;
      return;
    }
    this.reserve(this.#length + piece.length, limit, hint);
    this.#bytes!.set(piece, this.#length);
    this.#length += piece.length;
  }

  /** Counts `count` more bytes, written into {@linkcode spare}, as content. */
  grow(count: number): void {
    this.#length += count;
  }

  /** Drops the first `count` bytes of content, moving the rest to the front. */
  shift(count: number): void {
    if (count <= 0) return;
    this.#bytes!.copyWithin(0, count, this.#length);
    this.#length -= count;
  }

  /** Hands over the content and lets go of the buffer: the next piece starts a new one. */
  take(): Uint8Array {
    const content = this.bytes;
    this.clear();
    return content;
  }

  /** Lets go of the buffer and its content. */
  clear(): void {
    this.#bytes = null;
    this.#length = 0;
  }
}
