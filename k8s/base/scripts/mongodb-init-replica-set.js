// Loaded by mongodb-init-replica-set.sh; credentials come from the container's env.
const env = process.env;
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

const admin = db.getSiblingDB("admin");
const roles = [{ role: "readWrite", db: env.MONGODB_DATABASE }];
if (admin.getUser(env.MONGODB_APP_USERNAME) === null) {
  admin.createUser({ user: env.MONGODB_APP_USERNAME, pwd: env.MONGODB_APP_PASSWORD, roles });
  print(`created user ${env.MONGODB_APP_USERNAME}`);
} else {
  admin.updateUser(env.MONGODB_APP_USERNAME, { pwd: env.MONGODB_APP_PASSWORD, roles });
}
print(`replica set ${env.MONGODB_REPLICA_SET} ready`);
