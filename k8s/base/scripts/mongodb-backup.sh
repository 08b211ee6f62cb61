#!/bin/bash
# mongodump of the whole replica set with --oplog (a consistent point in time even while
# the consumer writes), gzipped into one archive on the backup volume; archives older than
# MONGODB_BACKUP_RETENTION_DAYS are deleted. Run by the mongodb-backup CronJob. Restore:
# docs/deploy-kubernetes.md ("Restore from a backup").
set -euo pipefail
umask 077

# The password goes in a config file, not on the command line.
config=/tmp/mongodump.yaml
printf "password: '%s'\n" "${MONGODB_BACKUP_PASSWORD//\'/\'\'}" >"${config}"

name="purchase-system-$(date -u +%Y%m%dT%H%M%SZ).archive.gz"
mongodump --config="${config}" --host="rs0/${MONGODB_HOST}" \
  --username="${MONGODB_BACKUP_USERNAME}" --authenticationDatabase=admin \
  --oplog --gzip --archive="/backups/${name}.partial"
mv "/backups/${name}.partial" "/backups/${name}"
rm -f "${config}"
echo "wrote /backups/${name} ($(du -h "/backups/${name}" | cut -f1))"

find /backups -name 'purchase-system-*.archive.gz*' -mtime +"${MONGODB_BACKUP_RETENTION_DAYS}" -print -delete
df -h /backups
