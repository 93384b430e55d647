/**
 * A message's bytes as the `ArrayBuffer` that framework handlers expect.
 * @module
 */

/**
 * The bytes of `view` as an `ArrayBuffer` of exactly them: the view's own buffer when the view
 * spans all of it (Wisp never reuses the buffer of a message it handed over), else a copy, since
 * a message may be a view into a larger read buffer.
 */
export function exactArrayBuffer(view: Uint8Array): ArrayBuffer {
  const buffer = view.buffer as ArrayBuffer;
  if (view.byteOffset === 0 && view.byteLength === buffer.byteLength) return buffer;
  return buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
}
