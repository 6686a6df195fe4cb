// node:fs/promises for the browser bundle (the volume, through shims/fs.ts).
import { promises } from './fs.js';

export const { readFile, writeFile, mkdir, rm, stat, readdir, rename, open } = promises;
export default promises;
