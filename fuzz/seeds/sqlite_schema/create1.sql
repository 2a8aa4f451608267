CREATE TABLE IF NOT EXISTS main."t" ([a b] varchar(256), `c``d` BLOB, 'e' REAL /* ) */, -- x
 f, PRIMARY KEY (f DESC))