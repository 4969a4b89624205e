import { RiskEngine, riskFaults, type RiskFault } from '../risk/risk-engine.ts';
import { RiskScorer, shippedModelPath } from '../risk/model/scorer.ts';
import { usdRates } from '../risk/usd-rates.ts';
import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { buildInternalServer } from '../api/internal-server.ts';
import { buildPublicServer } from '../api/public-server.ts';
import { cardSource } from '../connectors/card/vault-card-source.ts';
import { CardVault, vaultDataKeyRows, vaultHasDataKeys } from '../vault/card-vault.ts';
import { databaseLabel, noteKekUsage } from '../vault/kek-usage.ts';
import { openKeyEncryptionKey } from '../vault/open-kek.ts';
import { createConnectorRegistry, prepareSandboxKeys } from '../connectors/registry.ts';
import type { Services } from '../flows/context.ts';
import { startJobs, type JobRunner } from '../jobs/job-runner.ts';
import { startWebhookWorker, type WebhookWorker } from '../webhooks/deliverer.ts';
import { systemClock, type Clock } from '../platform/clock.ts';
import { ConfigError, type Config } from '../platform/config.ts';
import { faultPointsFromEnv } from '../platform/fault-points.ts';
import { deriveKey, loadInstanceSecret } from '../platform/instance-secret.ts';
import { requestSigningKey } from '../identity/merchants.ts';
import { CheckpointSigner } from '../audit/checkpoint-signer.ts';
import { createLogger, type Logger } from '../platform/logger.ts';
import { Secret } from '../platform/secret.ts';
import { loadTlsMaterial, tlsCiphers } from '../platform/tls.ts';
import { migrate } from '../store/migrate.ts';
import type { OpenDatabase } from '../store/open-database.ts';
import { openConfiguredDatabase } from './open-configured-database.ts';
import { ensureDemoMerchant, type DemoMerchant } from './demo-merchant.ts';
import { checkHomeKeys, recordInstanceKey } from './home-keys.ts';
import { GatewayNotifier, SandboxOutboxNotifier } from '../connectors/shopper-notifier.ts';

export interface StartOptions {
  config: Config;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  clock?: Clock;
  /** Create the quick start's demo merchant on an empty installation. */
  demoMerchant?: boolean;
  /** An already open database (tests share one between server restarts). */
  database?: OpenDatabase;
  providerTimeoutMs?: number;
}

export interface RunningCoffer {
  url: string;
  port: number;
  /** The internal listener: the staff API. */
  internalUrl: string;
  internalPort: number;
  services: Services;
  database: OpenDatabase;
  app: FastifyInstance;
  internalApp: FastifyInstance;
  demo: DemoMerchant | undefined;
  certFile: string | null;
  close(): Promise<void>;
}

/** The CA that issues staff client certificates, when the internal listener requires them. */
function readClientCa(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`COFFER_INTERNAL_CLIENT_CA: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(`COFFER_INTERNAL_CLIENT_CA: ${file} holds no PEM certificate`);
  return pem;
}

export async function buildServices(database: OpenDatabase, config: Config, options: StartOptions, logger: Logger): Promise<Services> {
  const env = options.env ?? process.env;
  const commitDurability = database.kind === 'postgres' ? 'flush_with_dependents' : 'flush_every_commit';
  const clock = options.clock ?? systemClock;
  // The key-encryption key first: a refusal (kek_missing) leaves the home as it found it.
  const kek = await openKeyEncryptionKey(config.kek, config.homeDir, () => vaultHasDataKeys(database.db));
  // Which KEKs this database needs, for `coffer keys retire` run against another database served from this home.
  await noteKekUsage(database.db, kek, vaultDataKeyRows(database.db), config.homeDir, databaseLabel(config.databaseUrl), clock.nowMs());
  const instanceSecret = loadInstanceSecret(config.homeDir);
  const sandboxNotificationSecret = new Secret(deriveKey(instanceSecret, 'sandbox notifications v1').reveal().toString('base64'));
  const fingerprintKey = deriveKey(instanceSecret, 'card fingerprint v1');
  const vault = new CardVault(database.db, kek, clock, fingerprintKey, logger.child({ component: 'vault' }));
  return {
    vault,
    commitDurability,
    db: database.db,
    clock,
    logger,
    connectors: createConnectorRegistry(database.db, logger, {
      durability: commitDurability,
      clock,
      sandboxNotificationSecret,
      returnLinkKey: deriveKey(instanceSecret, 'payment return links v1'),
      homeDir: config.homeDir,
      liveAccounts: config.liveAccounts,
      sandboxControls: config.sandboxControls,
      timeoutMs: options.providerTimeoutMs,
    }),
    cardSource: cardSource(vault),
    faults: faultPointsFromEnv(env),
    fingerprintKey,
    webhooks: { secretKey: deriveKey(instanceSecret, 'webhook secrets v1'), allowPrivate: config.webhooksAllowPrivate, timing: config.webhookTiming },
    requestSigningKey: requestSigningKey(instanceSecret),
    staffSecretKey: deriveKey(instanceSecret, 'staff secrets v1'),
    auditSigner: CheckpointSigner.open(config.homeDir),
    homeDir: config.homeDir,
    risk: openRiskEngine(config, env),
    checkoutKey: deriveKey(instanceSecret, 'checkout sessions v1'),
    checkoutFrameOrigin: config.cardFrameOrigin,
    shopperNotifier: {
      test: new SandboxOutboxNotifier(),
      live: config.shopperNotify === undefined ? undefined : new GatewayNotifier({ ...config.shopperNotify, nowMs: () => clock.nowMs() }),
    },
    maintainStorage: () => database.maintain(),
  };
}

/** Model files already read in this process (a model file is never changed in place: a new model is a new file). */
const loadedModels = new Map<string, RiskScorer>();

/** The risk engine with its model loaded now: a model file that cannot be read stops the start, naming it. */
function openRiskEngine(config: Config, env: NodeJS.ProcessEnv): RiskEngine {
  const settings = config.risk;
  const fault = env.COFFER_RISK_FAULT || null;
  if (fault !== null && !(riskFaults as readonly string[]).includes(fault)) {
    throw new ConfigError(`COFFER_RISK_FAULT must be one of ${riskFaults.join(', ')}`);
  }
  let scorer: RiskScorer | null = null;
  if (settings.modelFile !== null) {
    const file = settings.modelFile ?? shippedModelPath('sparkov');
    try {
      scorer = loadedModels.get(file) ?? RiskScorer.fromFile(file);
      loadedModels.set(file, scorer);
    } catch (error) {
      throw new ConfigError(`COFFER_RISK_MODEL: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (scorer.artifact.dataset !== 'sparkov') {
      throw new ConfigError(`COFFER_RISK_MODEL: ${file} is a ${scorer.artifact.dataset} model; live scoring uses a model with the Sparkov features`);
    }
  }
  return new RiskEngine({
    scorer,
    velocityBudgetMs: settings.velocityBudgetMs,
    modelBudgetUs: settings.modelBudgetUs,
    usdRates: usdRates(settings.usdRates),
    fault: fault as RiskFault | null,
  });
}

/** Opens and migrates the database, then serves the public listener and runs the background jobs. */
export async function startCoffer(options: StartOptions): Promise<RunningCoffer> {
  const config = options.config;
  const logger = options.logger ?? createLogger(config.logLevel);
  // A first start's sandbox keys are made while the database opens, and written once the home is known to be the
  // database's; failures surface where they are awaited.
  const sandboxKeys = prepareSandboxKeys(config.homeDir).then((keep) => ({ keep }), (error: unknown) => ({ error }));
  const database = options.database ?? (await openConfiguredDatabase(config, 'server'));
  let app: FastifyInstance | undefined;
  let internal: FastifyInstance | undefined;
  let jobs: JobRunner | undefined;
  let webhooks: WebhookWorker | undefined;
  let services: Services | undefined;
  try {
    const clientCa = readClientCa(config.internalClientCaFile);
    const report = await migrate(database);
    if (report.applied.length > 0) logger.info({ applied: report.applied }, 'database migrated');
    const sandbox = await sandboxKeys;
    if ('error' in sandbox) throw sandbox.error;
    // Before any key is made: a home without the database's keys (lost, or another installation's) is refused.
    await checkHomeKeys(database.db, config.homeDir);
    sandbox.keep();
    services = await buildServices(database, config, options, logger);
    await recordInstanceKey(database.db, config.homeDir);
    const demo = options.demoMerchant === true ? await ensureDemoMerchant(database.db, config.homeDir) : undefined;
    const tls = config.tlsDisabled
      ? null
      : await loadTlsMaterial(config.homeDir, { certFile: config.tlsCertFile, keyFile: config.tlsKeyFile }, Date.now());
    app = await buildPublicServer(services, {
      https: tls === null ? null : { key: tls.key, cert: tls.cert, ciphers: tlsCiphers },
      rateLimits: config.rateLimits,
      onFatal: (error) => {
        logger.fatal({ err: error }, 'stopping after a failed assertion');
        process.exit(70);
      },
    });
    await listenOn(app, config.publicHost, config.publicPort, 'the public listener', 'COFFER_PORT');
    internal = await buildInternalServer(services, {
      https: tls === null ? null : { key: tls.key, cert: tls.cert, ciphers: tlsCiphers, clientCa },
      rateLimits: config.rateLimits,
      staffSecretKey: services.staffSecretKey,
      fourEyesRefundAbove: config.fourEyesRefundAbove,
      staffOrigin: config.staffOrigin,
      onFatal: (error) => {
        logger.fatal({ err: error }, 'stopping after a failed assertion');
        process.exit(70);
      },
    });
    await listenOn(internal, config.internalHost, config.internalPort, 'the internal (staff) listener', 'COFFER_INTERNAL_PORT');
    const listenerUrl = (server: FastifyInstance, bindHost: string, fallbackPort: number) => {
      const address = server.server.address();
      const port = typeof address === 'object' && address !== null ? address.port : fallbackPort;
      const host = bindHost === '0.0.0.0' || bindHost === '::' ? 'localhost' : bindHost;
      return { port, url: `${tls === null ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${port}` };
    };
    const { port, url } = listenerUrl(app, config.publicHost, config.publicPort);
    // Providers and shoppers reach Coffer at its public URL; a self-signed certificate is trusted for the sandboxes' loopback calls.
    services.connectors.setPublicEndpoint({ url: config.publicUrl ?? url, ca: tls !== null && config.tlsCertFile === undefined ? tls.cert : undefined });
    const internalListener = listenerUrl(internal, config.internalHost, config.internalPort);
    if (config.jobsEnabled) {
      jobs = startJobs(services);
      webhooks = startWebhookWorker(services);
    }
    const runningApp = app;
    const runningInternal = internal;
    const runningServices = services;
    return {
      url,
      port,
      internalUrl: internalListener.url,
      internalPort: internalListener.port,
      services,
      database,
      app: runningApp,
      internalApp: runningInternal,
      demo,
      certFile: tls?.certFile ?? null,
      close: async () => {
        await webhooks?.stop();
        await jobs?.stop();
        await runningInternal.close();
        await runningApp.close();
        await runningServices.vault.kek.close();
        if (options.database === undefined) await database.close();
      },
    };
  } catch (error) {
    await webhooks?.stop();
    await jobs?.stop();
    await internal?.close();
    await app?.close();
    await services?.vault.kek.close();
    if (options.database === undefined) await database.close();
    throw error;
  }
}

/** Listens, or says which setting moves a listener whose port is taken. */
async function listenOn(server: FastifyInstance, host: string, port: number, what: string, setting: string): Promise<void> {
  try {
    await server.listen({ host, port });
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'EADDRINUSE') throw error;
    throw new Error(`Port ${port} on ${host}, for ${what}, is in use (another Coffer, or another program): choose another with ${setting}.`, { cause: error });
  }
}
