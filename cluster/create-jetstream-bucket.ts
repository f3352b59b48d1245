/**
 * Making a JetStream-backed bucket (a KV bucket, an object store) that another process may be making at
 * the same moment. Two workers started together both find no bucket and both create it; NATS 2.9 refuses
 * the second create with "subjects overlap with an existing stream" although the bucket it wanted is
 * there by then. Creating again finds the bucket and opens it, so one retry is what the loser needs.
 */
export async function createBucketOnce<T>(create: () => Promise<T>): Promise<T> {
  try {
    return await create();
  } catch (error) {
    if (error instanceof Error && /subjects overlap with an existing stream/.test(error.message)) return create();
    throw error;
  }
}
