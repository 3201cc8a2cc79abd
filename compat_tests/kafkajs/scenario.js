// One KafkaJS session against a broker: admin, an idempotent producer, a consumer group
// of two members, committed offsets. Prints one JSON object for the Python test to check.
// Usage: node scenario.js BOOTSTRAP TOPIC COUNT
// KAFKAJS_SECURITY (JSON, optional): {"ca": PEM path, "cert": path, "key": path,
// "sasl": {"mechanism": "plain" | "scram-sha-256" | "scram-sha-512", "username", "password"}
// or {"mechanism": "oauthbearer", "token": JWT}}.
'use strict';
const fs = require('fs');
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

const [bootstrap, topic, countArg] = process.argv.slice(2);
const count = Number(countArg);
const partitions = 4;
const groupId = `${topic}-group`;
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const options = { clientId: 'walrus-compat', brokers: [bootstrap], logLevel: logLevel.WARN };
const security = process.env.KAFKAJS_SECURITY ? JSON.parse(process.env.KAFKAJS_SECURITY) : {};
if (security.ca) {
  options.ssl = { ca: [fs.readFileSync(security.ca, 'utf8')] };
  if (security.cert) {
    options.ssl.cert = fs.readFileSync(security.cert, 'utf8');
    options.ssl.key = fs.readFileSync(security.key, 'utf8');
  }
}
if (security.sasl) {
  const { mechanism, token } = security.sasl;
  options.sasl = mechanism === 'oauthbearer'
    ? { mechanism, oauthBearerProvider: async () => ({ value: token }) }
    : security.sasl;
}
const kafka = new Kafka(options);

function deadline(ms, what) {
  // unref: a pending deadline must not keep the process alive once the work is done.
  return new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms).unref());
}

async function main() {
  const out = {};
  const admin = kafka.admin();
  await admin.connect();
  out.created = await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
  out.partitions = metadata.topics[0].partitions.map((p) => p.partitionId).sort();

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const sent = [];
  for (let batch = 0; batch < count / 50; batch++) {
    const messages = [];
    for (let i = batch * 50; i < (batch + 1) * 50; i++) {
      const value = i % 10 === 7 ? '' : `value-${i}`;
      messages.push({ key: `key-${i}`, value, headers: { n: String(i) }, partition: i % partitions });
      sent.push({ key: `key-${i}`, value, n: String(i), partition: i % partitions });
    }
    await producer.send({
      topic, messages, acks: -1,
      compression: batch % 2 ? CompressionTypes.GZIP : CompressionTypes.None,
    });
  }
  await producer.disconnect();
  out.sent = sent;

  const consumed = [];
  const members = [];
  let done;
  const allRead = new Promise((resolve) => { done = resolve; });
  for (let m = 0; m < 2; m++) {
    const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        consumed.push({
          member: m, partition, offset: message.offset,
          key: message.key && message.key.toString(),
          value: message.value && message.value.toString(),
          n: message.headers.n && message.headers.n.toString(),
        });
        if (consumed.length >= count) done();
      },
    });
    members.push(consumer);
  }
  await Promise.race([allRead, deadline(60000, 'the group to read every record')]);
  // Stopping commits what was read; then the committed offsets are read back.
  for (const consumer of members) await consumer.disconnect();
  out.consumed = consumed;
  out.committed = (await admin.fetchOffsets({ groupId, topics: [topic] }))[0].partitions
    .map((p) => ({ partition: p.partition, offset: p.offset }));
  out.highs = (await admin.fetchTopicOffsets(topic))
    .map((p) => ({ partition: p.partition, high: p.high, low: p.low }));
  out.groups = (await admin.describeGroups([groupId])).groups.map((g) => ({ id: g.groupId, state: g.state }));
  await admin.deleteTopics({ topics: [topic] });
  out.after_delete = (await admin.listTopics()).includes(topic);
  await admin.disconnect();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
