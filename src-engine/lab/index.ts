// Public surface of lab/: the built-in lab and its write generator.

export { ensureLab, removeLab, labLayout, labPairName, labDefaults, type LabOptions, type LabLayout } from './lab';
export {
  WriteGenerator,
  writePatterns,
  generatorDefaults,
  generatorLimits,
  validateGeneratorSettings,
  type GeneratorSettings,
  type GeneratorState,
  type WritePattern,
} from './write-generator';
