// The layer rule of DESIGN.md as code: every import of every source file is classified and
// checked. Used by layers.test.ts; kept separate so its own behaviour can be tested.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

export interface ImportRef {
  readonly specifier: string;
  readonly typeOnly: boolean;
}

export interface Violation {
  readonly file: string;
  readonly specifier: string;
  readonly rule: string;
}

const nodeBuiltins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
/** npm packages the engine may use: pure JS or WebAssembly, no UI. */
export const engineDependencies = new Set(['zod', 'commander', 'hash-wasm', 'ssh2', 'esbuild']);

export function importsOf(fileName: string, text: string): ImportRef[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, fileName.endsWith('x') ? ts.ScriptKind.TSX : ts.ScriptKind.TS);
  const refs: ImportRef[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const typeOnly =
        Boolean(clause?.isTypeOnly) ||
        Boolean(
          clause && !clause.name && clause.namedBindings && ts.isNamedImports(clause.namedBindings) && clause.namedBindings.elements.every((e) => e.isTypeOnly),
        );
      refs.push({ specifier: node.moduleSpecifier.text, typeOnly });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      refs.push({ specifier: node.moduleSpecifier.text, typeOnly: node.isTypeOnly });
    } else if (ts.isCallExpression(node) && node.arguments.length === 1 && ts.isStringLiteral(node.arguments[0]!)) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require'))
        refs.push({ specifier: (node.arguments[0] as ts.StringLiteral).text, typeOnly: false });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      refs.push({ specifier: node.argument.literal.text, typeOnly: true });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return refs;
}

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** The engine folder a path under src-engine belongs to ('' for the engine root files). */
function engineFolder(root: string, absolutePath: string): string {
  const rel = relative(join(root, 'src-engine'), absolutePath);
  const parts = rel.split(sep);
  return parts.length > 1 ? parts[0]! : '';
}

function isFolderIndex(root: string, target: string): boolean {
  const rel = relative(join(root, 'src-engine'), target).split(sep);
  return rel.length === 1 || (rel.length === 2 && rel[1] === 'index');
}

export function checkFile(root: string, file: string, refs: readonly ImportRef[]): Violation[] {
  const layer = relative(root, file).split(sep)[0]!;
  const violations: Violation[] = [];
  const flag = (specifier: string, rule: string) => violations.push({ file: relative(root, file), specifier, rule });
  for (const { specifier, typeOnly } of refs) {
    const isRelative = specifier.startsWith('.');
    const target = isRelative ? resolve(dirname(file), specifier).replace(/\.(ts|tsx|js)$/, '') : '';
    const targetLayer = isRelative ? relative(root, target).split(sep)[0]! : '';
    if (layer === 'src-engine') {
      if (!isRelative) {
        if (!nodeBuiltins.has(specifier) && !engineDependencies.has(packageName(specifier)))
          flag(specifier, 'src-engine imports only node builtins, its own modules and pure-JS dependencies');
        continue;
      }
      if (targetLayer !== 'src-engine') {
        flag(specifier, 'src-engine imports nothing outside src-engine');
        continue;
      }
      const from = engineFolder(root, file);
      const to = engineFolder(root, target);
      if (to !== '' && to !== from && !isFolderIndex(root, target)) flag(specifier, `import engine folder "${to}" through its index.ts`);
    } else if (layer === 'src-main') {
      if (!isRelative) {
        if (['react', 'react-dom'].includes(packageName(specifier)) || specifier.startsWith('@mui/')) flag(specifier, 'src-main does not import UI code');
        continue;
      }
      if (targetLayer === 'src-engine' && relative(join(root, 'src-engine'), target) !== 'index' && relative(root, target) !== 'src-engine')
        flag(specifier, 'src-main imports src-engine/index.ts only');
      if (targetLayer === 'src-renderer') flag(specifier, 'src-main does not import the renderer');
    } else if (layer === 'src-renderer') {
      if (!isRelative) {
        if (nodeBuiltins.has(specifier) || specifier === 'electron') flag(specifier, 'src-renderer imports no Node modules and no electron');
        continue;
      }
      if (targetLayer === 'src-engine') flag(specifier, 'src-renderer imports no engine code');
      if (targetLayer === 'src-main' && !typeOnly) flag(specifier, 'src-renderer imports console API types only (import type)');
    }
  }
  return violations;
}

export function sourceFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|tsx)$/.test(name) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

export function checkTree(root: string): { files: number; violations: Violation[] } {
  const files = ['src-engine', 'src-main', 'src-renderer'].flatMap((layer) => sourceFiles(join(root, layer)));
  const violations = files.flatMap((file) => checkFile(root, file, importsOf(file, readFileSync(file, 'utf8'))));
  return { files: files.length, violations };
}
