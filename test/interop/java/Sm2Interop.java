// BouncyCastle side of the SM2 interop tests (test/interop/crypto-bouncycastle.test.ts).
// One JVM per batch: reads one command per line on stdin, prints one result line per command.
//   verify  <spkiHex> <idHex|-> <msgHex> <sigHex>   -> true | false     (SM3withSM2)
//   sign    <pkcs8Hex> <idHex|-> <msgHex>           -> <sigHex DER>
//   encrypt <spkiHex> <msgHex>                      -> <C1C3C2 hex>     (SM2Engine, GB/T 32918.4)
//   decrypt <pkcs8Hex> <ctHex C1C3C2>               -> <plaintext hex>
//   pubkey  <pkcs8Hex>                              -> <SPKI hex> as BC encodes it
// "-" as the ID means: no SM2ParameterSpec (BC's default ID "1234567812345678").
// Any failure prints "error <message>" for that line.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.Security;
import java.security.Signature;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.spec.X509EncodedKeySpec;
import java.security.interfaces.ECPrivateKey;
import org.bouncycastle.crypto.engines.SM2Engine;
import org.bouncycastle.crypto.params.ParametersWithRandom;
import org.bouncycastle.jcajce.provider.asymmetric.util.ECUtil;
import org.bouncycastle.jcajce.spec.SM2ParameterSpec;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.util.encoders.Hex;

public class Sm2Interop {
  public static void main(String[] args) throws Exception {
    Security.addProvider(new BouncyCastleProvider());
    KeyFactory kf = KeyFactory.getInstance("EC", "BC");
    SecureRandom random = new SecureRandom();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
    StringBuilder out = new StringBuilder();
    for (String line = in.readLine(); line != null; line = in.readLine()) {
      line = line.trim();
      if (line.isEmpty()) continue;
      String[] f = line.split(" ");
      try {
        switch (f[0]) {
          case "verify": {
            PublicKey pub = kf.generatePublic(new X509EncodedKeySpec(Hex.decode(f[1])));
            Signature s = Signature.getInstance("SM3withSM2", "BC");
            if (!f[2].equals("-")) s.setParameter(new SM2ParameterSpec(Hex.decode(f[2])));
            s.initVerify(pub);
            s.update(Hex.decode(f[3]));
            out.append(s.verify(Hex.decode(f[4]))).append('\n');
            break;
          }
          case "sign": {
            PrivateKey priv = kf.generatePrivate(new PKCS8EncodedKeySpec(Hex.decode(f[1])));
            Signature s = Signature.getInstance("SM3withSM2", "BC");
            if (!f[2].equals("-")) s.setParameter(new SM2ParameterSpec(Hex.decode(f[2])));
            s.initSign(priv, random);
            s.update(Hex.decode(f[3]));
            out.append(Hex.toHexString(s.sign())).append('\n');
            break;
          }
          case "encrypt": {
            PublicKey pub = kf.generatePublic(new X509EncodedKeySpec(Hex.decode(f[1])));
            SM2Engine e = new SM2Engine(SM2Engine.Mode.C1C3C2);
            e.init(true, new ParametersWithRandom(ECUtil.generatePublicKeyParameter(pub), random));
            byte[] m = Hex.decode(f[2]);
            out.append(Hex.toHexString(e.processBlock(m, 0, m.length))).append('\n');
            break;
          }
          case "decrypt": {
            PrivateKey priv = kf.generatePrivate(new PKCS8EncodedKeySpec(Hex.decode(f[1])));
            SM2Engine e = new SM2Engine(SM2Engine.Mode.C1C3C2);
            e.init(false, ECUtil.generatePrivateKeyParameter(priv));
            byte[] c = Hex.decode(f[2]);
            out.append(Hex.toHexString(e.processBlock(c, 0, c.length))).append('\n');
            break;
          }
          case "pubkey": {
            ECPrivateKey priv = (ECPrivateKey) kf.generatePrivate(new PKCS8EncodedKeySpec(Hex.decode(f[1])));
            org.bouncycastle.jce.interfaces.ECPrivateKey bc = (org.bouncycastle.jce.interfaces.ECPrivateKey) priv;
            org.bouncycastle.jce.spec.ECParameterSpec spec = bc.getParameters();
            org.bouncycastle.math.ec.ECPoint q = spec.getG().multiply(bc.getD()).normalize();
            PublicKey pub = kf.generatePublic(new org.bouncycastle.jce.spec.ECPublicKeySpec(q, spec));
            out.append(Hex.toHexString(pub.getEncoded())).append('\n');
            break;
          }
          default:
            out.append("error unknown command ").append(f[0]).append('\n');
        }
      } catch (Exception ex) {
        out.append("error ").append(ex.getClass().getSimpleName()).append(": ").append(String.valueOf(ex.getMessage()).replace('\n', ' ')).append('\n');
      }
    }
    System.out.print(out);
    System.out.flush();
  }
}
