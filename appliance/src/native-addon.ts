// Where the native addons of binding.gyp are: build/Release of the repository (or install)
// root. Source runs from <root>/appliance/… or <root>/firmware-bridge/…, compiled code from
// <root>/dist/…, so the search walks up from the calling module.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Path of build/Release/`file` in the nearest directory above `fromUrl` (import.meta.url), or undefined. */
export function findNativeAddon(file: string, fromUrl: string): string | undefined {
  for (let dir = dirname(fileURLToPath(fromUrl)); ; dir = dirname(dir)) {
    const candidate = join(dir, 'build', 'Release', file);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}
