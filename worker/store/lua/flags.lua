-- Set many flag keys to "1" with one expiry. KEYS: the flags. ARGV[1]: ttl seconds.
for _, key in ipairs(KEYS) do
  redis.call('SET', key, '1', 'EX', ARGV[1])
end
return #KEYS
