// Public surface of signature/: algorithms, the worker pool and signature maps.

export {
  hashAlgorithms,
  hashAlgorithmDefault,
  signatureBytes,
  parseHashAlgorithm,
  signBytes,
  createRegionHasher,
  type HashAlgorithm,
  type RegionHasher,
} from './algorithms';
export { SignaturePool, type RegionToSign, type SignatureBatch, type SignOptions, type SignProgress } from './pool';
export { SignatureMap, signRegions } from './signature-map';
export { type RegionLocation } from './read-hash';
