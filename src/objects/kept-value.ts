/**
 * A value in a Durable Object's storage that only this object writes: read from storage once per
 * instance, then answered from memory, every write made to both (a bot's hot path then reads no
 * storage). `forget()` after the object's storage is wiped; null deletes the key.
 */
export class KeptValue<T> {
  private known = false;
  private value: T | undefined;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly key: string,
    /** What a missing key reads as. */
    private readonly missing: () => T,
  ) {}

  async get(): Promise<T> {
    if (!this.known) {
      this.value = (await this.storage.get<T>(this.key)) ?? this.missing();
      this.known = true;
    }
    return this.value as T;
  }

  async set(value: T): Promise<void> {
    this.value = value;
    this.known = true;
    if (value === null) await this.storage.delete(this.key);
    else await this.storage.put(this.key, value);
  }

  forget(): void {
    this.known = false;
    this.value = undefined;
  }
}
