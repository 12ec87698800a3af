/**
 * The failure and the wait for the fleet to get over it. `Failure` owns the storm's clock: when
 * it began (t0), when DNS flipped, when a killed primary was gone.
 */
import { type Fleet, fleetSum } from './fleet.js'
import { BROKER_NAME, REGION_B_NAME, type Regions, SECONDARY_ADDRESS } from './regions.js'
import { type RunContext, sleep } from './run-context.js'
import { msUntil } from './shard.js'
import { runCommand, type TargetConfig } from './target.js'

export class Failure {
  /** Epoch ms of the failure. */
  readonly t0 = Date.now()
  /** DNS flip (crash, blackhole), ms after the failure. */
  flipAt: number | undefined
  /** Crash: when the killed process was reaped (its sockets are closed by then), ms after. */
  primaryGoneMs: number | undefined
  private flipTimer: NodeJS.Timeout | undefined

  constructor(private readonly ctx: RunContext) {}

  /** Points the broker's name at the secondary, as the region's health check would. */
  flipDns(): void {
    this.flipAt = Date.now() - this.t0
    this.ctx.servers.dns?.set(BROKER_NAME, [SECONDARY_ADDRESS], this.ctx.config.dnsTtl)
  }

  /** The simulated health check: flips DNS after `healthCheckMs`. */
  flipAfterHealthCheck(): void {
    this.flipTimer = setTimeout(() => this.flipDns(), this.ctx.config.healthCheckMs)
  }

  /**
   * The fleet moved before the simulated health check (or the wait ended): flip anyway, so the
   * end state is the same for every run.
   */
  settle(): void {
    if (this.flipTimer && this.flipAt === undefined) {
      clearTimeout(this.flipTimer)
      this.flipDns()
    }
  }
}

/**
 * Sharded runs share the scenario's clock: with `--start-at` and `--fail-at-ms` every shard
 * injects its failure at the same moment, however long its own start took.
 */
export async function awaitFailureMoment(ctx: RunContext): Promise<void> {
  const { startAt, failAtMs } = ctx.config
  if (startAt === undefined || failAtMs === undefined) return
  const wait = msUntil(startAt + failAtMs, Date.now())
  if (wait === 0)
    ctx.log(
      `${ctx.scenario} / ${ctx.client}: --fail-at-ms passed before the fleet was ready; failing now`,
    )
  ctx.progress.phase(`failure in ${(wait / 1000).toFixed(1)} s (shared clock)`)
  await sleep(wait)
}

/** Fails the primary the scenario's way; the returned Failure's t0 is the moment it did. */
export async function injectFailure(ctx: RunContext, regions: Regions): Promise<Failure> {
  if (ctx.config.target) return failTarget(ctx, ctx.config.target)
  const failure = new Failure(ctx)
  switch (ctx.scenario) {
    case 'crash':
      void regions.primary.child?.exited.then(() => {
        failure.primaryGoneMs = Date.now() - failure.t0
      })
      regions.primary.child?.process.kill('SIGKILL')
      failure.flipAfterHealthCheck()
      break
    case 'blackhole':
      await regions.proxy?.child.request({ type: 'mode', mode: 'blackhole' })
      failure.flipAfterHealthCheck()
      break
    case 'dns-flip':
      failure.flipDns()
      break
    case 'concierge-flip':
      ctx.servers.concierge?.setBody({
        endpoint: `mqtt://${REGION_B_NAME}:${regions.port}`,
        epoch: 2,
      })
      break
  }
  return failure
}

/**
 * Target mode: the user's command fails the primary (the failure's moment is when it starts;
 * `primaryGoneMs` when it returned), or the user does, at the end of a printed countdown. Where
 * DNS points and when is up to the user's own failover: the storm just watches the devices.
 */
async function failTarget(ctx: RunContext, target: TargetConfig): Promise<Failure> {
  if (!target.failCmd) {
    for (let s = target.countdownS; s > 0; s--) {
      ctx.log(`${ctx.scenario}: fail the primary in ${s} s`)
      await sleep(1_000)
    }
    ctx.log(`${ctx.scenario}: fail the primary NOW`)
    return new Failure(ctx)
  }
  const failure = new Failure(ctx)
  const r = await runCommand(target.failCmd, target.cmdTimeoutMs)
  failure.primaryGoneMs = r.ms
  ctx.log(`${ctx.scenario}: --fail-cmd ${commandText(r)}`)
  return failure
}

/** Target mode, after the run: the user's command that brings the primary back. */
export async function recoverTarget(ctx: RunContext): Promise<void> {
  const cmd = ctx.config.target?.recoverCmd
  if (!cmd) return
  const r = await runCommand(cmd, ctx.config.target?.cmdTimeoutMs ?? 30_000)
  ctx.log(`${ctx.scenario}: --recover-cmd ${commandText(r)}`)
}

// The command line itself is not echoed: it is the user's, and may name a secret.
const commandText = (r: Awaited<ReturnType<typeof runCommand>>) =>
  `${r.ok ? 'done' : `failed (exit ${r.code ?? 'killed at the timeout'})`} in ${r.ms} ms` +
  (r.output ? `: ${r.output}` : '')

/**
 * Waits (bounded) for every device to be on the secondary, then the tail of steady publishing
 * there; says whether every device moved.
 */
export async function watchRecovery(
  ctx: RunContext,
  fleet: Fleet,
  failure: Failure,
  boundMs: number,
): Promise<boolean> {
  const { config, scenario, client, progress } = ctx
  const n = config.devices
  // The baseline has no DNS watch and no concierge: on a planned move it never moves, and
  // waiting three bounds to show it would only make the run long. One bound and 5 s more.
  const cannotMove =
    client === 'mqttjs' && (scenario === 'dns-flip' || scenario === 'concierge-flip')
  const deadlineMs = cannotMove
    ? boundMs + 5_000
    : Math.max(20_000, config.recoveryTimeoutFactor * boundMs)
  const moved = () => fleetSum(fleet, (t) => t.moved)
  progress.phase('storm')
  const allMoved = await ctx.waitUntil(
    () => moved() >= n,
    deadlineMs,
    () =>
      progress.update(
        moved(),
        n,
        `on the secondary  t+${((Date.now() - failure.t0) / 1000).toFixed(1)}s`,
      ),
  )
  failure.settle()
  progress.phase(allMoved ? 'tail' : 'tail (not every device moved)')
  await sleep(config.tailMs)
  return allMoved
}
