// Run by kafkajs_test.go: node run.js HOST:PORT. Creates a topic, produces
// keyed records with headers, consumes them with a group of two consumers,
// deletes the topic, and prints one JSON line with what happened.
const { Kafka, logLevel } = require('kafkajs');

const broker = process.argv[2];
const kafka = new Kafka({ clientId: 'kafkajs-test', brokers: [broker], logLevel: logLevel.NOTHING, retry: { retries: 10 } });
const topic = 'kafkajs';
const n = 50;

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  const topics = await admin.listTopics();

  const producer = kafka.producer();
  await producer.connect();
  const messages = [];
  for (let i = 0; i < n; i++) {
    messages.push({ key: 'k' + i, value: String(i), headers: { source: 'kafkajs' } });
  }
  await producer.send({ topic, messages });
  await producer.disconnect();

  const seen = new Map();
  let badHeaders = 0;
  const consumers = [];
  for (let c = 0; c < 2; c++) {
    const consumer = kafka.consumer({ groupId: 'kafkajs-group', sessionTimeout: 6000, heartbeatInterval: 300, maxWaitTimeInMs: 200 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        seen.set(message.value.toString(), message.key.toString());
        if (!message.headers.source || message.headers.source.toString() !== 'kafkajs') badHeaders++;
      },
    });
    consumers.push(consumer);
  }
  const deadline = Date.now() + 30000;
  while (seen.size < n && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const c of consumers) await c.disconnect();
  const offsets = await admin.fetchOffsets({ groupId: 'kafkajs-group', topics: [topic] });
  let committed = 0;
  for (const t of offsets) for (const p of t.partitions) committed += Number(p.offset);
  await admin.deleteTopics({ topics: [topic] });
  const after = await admin.listTopics();
  await admin.disconnect();
  console.log(JSON.stringify({
    created: topics.includes(topic), consumed: seen.size, badHeaders, committed,
    keysMatch: [...seen].every(([v, k]) => k === 'k' + v), deleted: !after.includes(topic),
  }));
}

main().catch((e) => { console.error(e); process.exit(1); });
