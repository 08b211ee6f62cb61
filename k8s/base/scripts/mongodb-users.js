// The database's users, from the purchase-system-secrets Secret (mongodb-users CronJob).
// Creates each user, or updates its password and roles, so it is safe to run any time:
// after a deploy, and after changing a password in the Secret (rotation, see
// docs/deploy-kubernetes.md). Logs in as root with the Secret's current root password.
const env = process.env;
const admin = db.getSiblingDB("admin");
admin.auth(env.MONGO_INITDB_ROOT_USERNAME, env.MONGO_INITDB_ROOT_PASSWORD);

const database = env.MONGODB_DATABASE;

// The ledger reads, and may create the indexes it reads with (ensure_indexes in its init
// container; mongoengine also checks them on first access). It cannot write a document.
const ledgerRole = "purchaseLedger";
const ledgerPrivileges = [{ resource: { db: database, collection: "" }, actions: ["createIndex"] }];
const ledgerRoles = [{ role: "read", db: database }];
if (admin.getRole(ledgerRole) === null) {
  admin.createRole({ role: ledgerRole, privileges: ledgerPrivileges, roles: ledgerRoles });
} else {
  admin.updateRole(ledgerRole, { privileges: ledgerPrivileges, roles: ledgerRoles });
}

const users = [
  // The consumer writes purchases and summaries.
  [env.MONGODB_CONSUMER_USERNAME, env.MONGODB_CONSUMER_PASSWORD, [{ role: "readWrite", db: database }]],
  // The ledger only reads (and creates indexes, above).
  [env.MONGODB_LEDGER_USERNAME, env.MONGODB_LEDGER_PASSWORD, [{ role: ledgerRole, db: "admin" }]],
  // mongodump --oplog (mongodb-backup CronJob).
  [env.MONGODB_BACKUP_USERNAME, env.MONGODB_BACKUP_PASSWORD, [{ role: "backup", db: "admin" }]],
  // The Prometheus exporter (k8s/monitoring/mongodb-exporter-values.yaml).
  [
    env.MONGODB_MONITOR_USERNAME,
    env.MONGODB_MONITOR_PASSWORD,
    [
      { role: "clusterMonitor", db: "admin" },
      { role: "read", db: "local" },
    ],
  ],
];

for (const [user, pwd, roles] of users) {
  if (!user || !pwd) {
    throw new Error("a user name or password is missing from the Secret");
  }
  if (admin.getUser(user) === null) {
    admin.createUser({ user, pwd, roles });
    print(`created user ${user}`);
  } else {
    admin.updateUser(user, { pwd, roles });
    print(`updated user ${user}`);
  }
}
