// Records and repository interface of the time-stamp authority (issue 5). store/ implements the
// repository on LMDB; the TSA service sees only this interface.

export type TsaIdentity = 'sm2' | 'ecdsa';
export type ImprintHash = 'sm3' | 'sha256' | 'sha384' | 'sha512';

/** One issued time-stamp token, stored before the reply leaves (RFC 3161 §2.4.2 fields + requester). */
export interface TsaTokenRecord {
  /** Lower-case hex of the token's serialNumber (positive, no leading zero bytes). */
  serial: string;
  identity: TsaIdentity;
  policy: string;
  imprintAlgorithm: ImprintHash;
  /** Lower-case hex of hashedMessage. */
  imprint: string;
  /** ISO 8601 UTC with milliseconds: the token's genTime. */
  genTime: string;
  accuracyMicros: number;
  /** Hex of the echoed nonce INTEGER content octets, if any. */
  nonce?: string;
  certReq: boolean;
  /** Serial of the TSA certificate that signed. */
  tsaCertificate: string;
  requester: { address: string; app?: string };
  /** The clock source and state at genTime. */
  clock: { source: string; state: string };
}

export interface TsaTokenRepository {
  /**
   * Stores a new record durably. Resolves false (and stores nothing) when the serial is
   * already taken — the caller draws a new serial.
   */
  insert(record: TsaTokenRecord): Promise<boolean>;
  /** Removes the record of a token that was never issued (its signing failed); durable. */
  discard(serial: string): Promise<void>;
  get(serial: string): Promise<TsaTokenRecord | undefined>;
  has(serial: string): Promise<boolean>;
  count(): Promise<number>;
}
