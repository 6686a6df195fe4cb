// The training-config options as command-line flags: every DPOConfig / SFTConfig field is also a
// hidden `--field-name <value>` flag overriding the --config file (values parsed as JSON when they can be).
import { Option, type Command } from 'commander';
import { dpoOptionNames, parseDpoConfig, parseSftConfig, readConfigFile, sftOptionNames } from '../train/config.js';

/** Adds one --flag per config option (TRL names with dashes); values are parsed as JSON when they can be. */
export function addConfigFlags(cmd: Command, names: readonly string[]): Command {
  for (const n of names) cmd.addOption(new Option(`--${n.replace(/_/g, '-')} <value>`).hideHelp());
  return cmd;
}

/** Config-option flags given on the command line, keyed by their TRL names. */
export function configOverrides(opts: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const n of names) {
    const camel = n.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    const v = opts[camel];
    if (v === undefined) continue;
    out[n] = parseFlagValue(String(v));
  }
  return out;
}

function parseFlagValue(v: string): unknown {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (v === 'null') return null;
  if (/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) return Number(v);
  if (v.startsWith('[') || v.startsWith('{')) {
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  }
  if (v.includes(',') && !v.includes(' ')) return v.split(',');
  return v;
}

export function loadDpoConfig(opts: Record<string, unknown>) {
  const file = typeof opts.config === 'string' ? readConfigFile(opts.config) : {};
  return parseDpoConfig(file, configOverrides(opts, dpoOptionNames), typeof opts.config === 'string' ? opts.config : 'options');
}

export function loadSftConfig(opts: Record<string, unknown>) {
  const file = typeof opts.config === 'string' ? readConfigFile(opts.config) : {};
  return parseSftConfig(file, configOverrides(opts, sftOptionNames), typeof opts.config === 'string' ? opts.config : 'options');
}
