// The database's users, from the purchase-system-secrets Secret (mongodb-users CronJob).
// Creates each user, or updates its password and roles, so it is safe to run any time:
// after a deploy, and after changing a password in the Secret (rotation, see
// docs/deploy-kubernetes.md). Logs in as root with the Secret's current root password.
const env = process.env;
const admin = db.getSiblingDB("admin");
admin.auth(env.MONGO_INITDB_ROOT_USERNAME, env.MONGO_INITDB_ROOT_PASSWORD);

const database = env.MONGODB_DATABASE;
const users = [
  // The consumer writes purchases and summaries (and ensure_indexes creates the indexes).
  [env.MONGODB_CONSUMER_USERNAME, env.MONGODB_CONSUMER_PASSWORD, [{ role: "readWrite", db: database }]],
  // The ledger only reads.
  [env.MONGODB_LEDGER_USERNAME, env.MONGODB_LEDGER_PASSWORD, [{ role: "read", db: database }]],
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
