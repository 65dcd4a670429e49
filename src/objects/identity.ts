/**
 * A Durable Object's own identity: the name it was addressed by (`getByName`).
 *
 * The runtime gives it as `ctx.id.name`, so no RPC needs to carry it. One gap:
 * workerd leaves `ctx.id.name` undefined when an alarm wakes a cold instance
 * after a restart (cloudflare/partykit#391), and an alarm is exactly when the
 * bot or deployment object must know who it is. So the name is written once
 * when first seen, and a stored name is trusted only if it hashes to this
 * object's real id: an object can never act as another.
 */
const NAME_KEY = "name";

export async function resolveObjectName(
  state: DurableObjectState,
  namespace: Pick<DurableObjectNamespace, "idFromName">,
): Promise<string | null> {
  const given = state.id.name;
  const stored = await state.storage.get<string>(NAME_KEY);
  if (given) {
    if (stored !== given) await state.storage.put(NAME_KEY, given);
    return given;
  }
  return stored && namespace.idFromName(stored).equals(state.id) ? stored : null;
}
