// The product version, injected by the build; "dev" when running from source.

declare const __TIDEMARK_VERSION__: string | undefined;

export const tidemarkVersion: string = typeof __TIDEMARK_VERSION__ === 'string' ? __TIDEMARK_VERSION__ : '0.0.0-dev';
