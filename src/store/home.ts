import { mkdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

/**
 * The one directory doorctl keeps state in: $DOORCTL_HOME, else the OS config dir that `conf`
 * would pick for project "doorctl" (computed the same way, without loading conf at start-up).
 */
export function resolveHome(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.DOORCTL_HOME
  const dir = explicit && explicit.trim() !== '' ? explicit : defaultConfigDir(env)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  return dir
}

// Mirrors env-paths' config dir (used by conf) with its default "-nodejs" suffix.
function defaultConfigDir(env: NodeJS.ProcessEnv): string {
  const name = 'doorctl-nodejs'
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Preferences', name)
  if (process.platform === 'win32') return join(env.APPDATA ?? join(homedir(), 'AppData', 'Roaming'), name, 'Config')
  return join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), name)
}
