// Loaded by mongodb-init-replica-set.sh (the mongod container's postStart hook).
//
// Initiates the one-member replica set on the first start, and does nothing else. An
// unauthenticated `hello` tells whether the set exists; only when it does not (a new data
// volume, whose root user the image's entrypoint has just created from the Secret) does the
// hook log in. So a rotated root password can never fail the hook on a later start, which
// would kill the container into a crash loop. Users are the mongodb-users CronJob's job.
const env = process.env;

if (db.hello().setName) {
  print(`replica set ${db.hello().setName} already initiated`);
  quit(0);
}

db.getSiblingDB("admin").auth(env.MONGO_INITDB_ROOT_USERNAME, env.MONGO_INITDB_ROOT_PASSWORD);
try {
  rs.status();
} catch (e) {
  if (e.codeName !== "NotYetInitialized") {
    throw e;
  }
  rs.initiate({ _id: env.MONGODB_REPLICA_SET, members: [{ _id: 0, host: env.MONGODB_MEMBER_HOST }] });
}

for (let i = 0; !db.hello().isWritablePrimary; i++) {
  if (i > 60) {
    throw new Error("not primary after 60 s");
  }
  sleep(1000);
}
print(`replica set ${env.MONGODB_REPLICA_SET} initiated`);
