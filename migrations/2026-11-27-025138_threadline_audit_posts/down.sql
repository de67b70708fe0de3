SELECT threadline.unaudit_table('"public"."posts"');
